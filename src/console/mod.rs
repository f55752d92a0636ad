//! The operator's console: the dashboard's session cookie (`session`), the per-second
//! samples of every sale kept for fifteen minutes (`sampler`) and the admin SSE stream that
//! pushes them (`stream`). The page itself is `static/admin.html` and `static/js/admin/`.

pub mod sampler;
pub mod session;
pub mod stream;

pub use sampler::{run_sampler, Console};
