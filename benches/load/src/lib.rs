//! The load generator behind `benches/load.sh`: signed GitHub pushes driven
//! at a webhook2fedmsg server on loopback, and a counter of what reached
//! the broker.
//!
//! [`pushes`] turns one recorded delivery into many distinct, signed ones
//! before the clock starts; [`drive`] sends them over keep-alive HTTP/1.1
//! connections, closed-loop or at a fixed rate, and records each latency in
//! an HDR histogram; [`report`] prints the outcome as one JSON object.
//! [`loopback`] refuses every target that is not this machine: the tool is
//! for benchmarking a server one started oneself, nothing else.

pub mod drive;
pub mod loopback;
pub mod pushes;
pub mod report;
