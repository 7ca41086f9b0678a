//! entropyd: the reference entropy daemon (being written).

fn main() {}
