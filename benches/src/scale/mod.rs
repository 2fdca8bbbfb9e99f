//! Large-scale benchmark harness internals (driven by the `smscale` binary).
//!
//! `run` measures child processes; `floors` are the standard tools on the same bytes (and restic);
//! `product` drives the stellamirror CLI; `pipeline` sequences one run; `report` renders it.

pub mod floors;
pub mod pipeline;
pub mod product;
pub mod report;
pub mod run;
pub mod summary;
