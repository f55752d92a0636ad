//! waitroom: a virtual waiting room and admission controller for flash sales.
//!
//! Flows, one module each: `queue` (joining), `admission` (the ticker and sweeper),
//! `checkout`, `payments`, `events` + `sse` (live push), `sales` (admin), `recovery` (a sale
//! Redis lost: detect, rebuild, settle). `store` owns every Redis key and script, `ledger`
//! every SQL statement, `tokens` the JWTs; `fault` is their error, `error` the HTTP one.

pub mod admission;
pub mod audit;
pub mod checkout;
pub mod config;
pub mod console;
pub mod domain;
pub mod door;
pub mod error;
pub mod events;
pub mod fault;
pub mod health;
pub mod ledger;
pub mod metrics;
pub mod payments;
pub mod queue;
pub mod recovery;
pub mod report;
pub mod routes;
pub mod sales;
pub mod schedule;
pub mod sse;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod tokens;
