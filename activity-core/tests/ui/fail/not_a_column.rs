// `#[sea_orm(ignore)]` and relation fields are not columns: nothing about them is recorded.
use activity_core::ModelActivity;
use std::marker::PhantomData;

#[derive(Default)]
struct HasMany<E>(PhantomData<E>);
struct Post;

#[derive(ModelActivity)]
#[activity(crate = "activity_core", scope = "Author", name = display, team = posts)]
struct Author {
    id: i32,
    #[sea_orm(ignore)]
    #[activity(mask)]
    display: String,
    #[sea_orm(has_many)]
    #[activity(rename = "articles")]
    posts: HasMany<Post>,
    #[sea_orm(ignore)]
    #[activity(exclude)]
    cache: Vec<u8>,
}

fn main() {}
