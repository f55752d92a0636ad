//! The HTTP layer: the URL map (`routes`), the one error mapping (`error`), the event streams
//! (`sse`), the dashboard's session and stream (`console`), the door's extractors and
//! middleware (`door`), and `AppState`, what handlers share. Handlers parse, call one flow,
//! map the result.

pub mod console;
pub mod credentials;
pub mod door;
pub mod error;
pub mod routes;
pub mod sse;
pub mod state;
