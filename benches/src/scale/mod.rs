//! Large-scale benchmark harness internals (see `smscale`).
