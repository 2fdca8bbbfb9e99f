//! A response body that holds a concurrency permit until it is sent or dropped: the bound
//! of `--max-concurrency` covers the transfer of a file, not only finding it.
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use http_body::{Frame, SizeHint};
use tokio::sync::OwnedSemaphorePermit;

pub struct Permitted {
    body: Body,
    _permit: OwnedSemaphorePermit,
}

impl Permitted {
    pub fn new(body: Body, permit: OwnedSemaphorePermit) -> Self {
        Self { body, _permit: permit }
    }
}

impl http_body::Body for Permitted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
