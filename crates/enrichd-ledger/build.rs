// The migrations are embedded by `sqlx::migrate!`: a new or changed one
// must rebuild the crate (as sqlx's `migrate build-script` writes it).
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
