//! What every route shares, apart from the routes themselves: the error type and the
//! authenticated caller (an axum extractor).

mod caller;
mod error;

pub use caller::Caller;
pub use error::{bad_request, ApiError};
