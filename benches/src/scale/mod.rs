//! Large-scale benchmark harness internals (driven by the `smscale` binary).
//!
//! `run` measures child processes; `peers` are the standard-tool floors and restic;
//! `product` drives the stellamirror CLI; `pipeline` sequences one run; `report` renders it.

pub mod peers;
pub mod pipeline;
pub mod product;
pub mod report;
pub mod run;
pub mod summary;
