//! Shared pieces for integration tests: real SCIM servers and a throwaway PostgreSQL cluster,
//! started as child processes.
//! Each test file that needs them says `mod support;`.
#![allow(dead_code, unused_imports)]

pub mod console_process;
pub mod fault_server;
pub mod oidc_provider;
pub mod people;
pub mod pg_cluster;
pub mod scim2_server;
pub mod smtp_sink;
pub mod tls_stand_in;

pub use fault_server::FaultServer;
pub use scim2_server::Scim2Server;
pub use tls_stand_in::TlsStandIn;
