use activity_core::ModelActivity;

struct Geometry {
    x: f64,
    y: f64,
}

#[derive(ModelActivity)]
#[activity(crate = "activity_core", scope = "Shape")]
struct Shape {
    name: String,
    geometry: Geometry,
}

fn main() {}
