//! The `webhook2fedmsg` command.

fn main() {}
