//! A stand-in HTTPS server (Python's ssl module, not a SCIM implementation) whose certificate
//! is signed by a private test CA, for checking TLS verification and the extra-CA option.
//! The certificates in `tls/` were made with openssl for these tests only (TEST-ONLY keys, no
//! use anywhere else): `ca.pem` signed `server.pem`; a second CA, `ca2.pem`, signed
//! `server2.pem`, for a bundle of two company CAs.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Answers every GET with a one-user SCIM list.
const SCRIPT: &str = r#"
import http.server, ssl, sys
port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
BODY = b'{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":1,"startIndex":1,"itemsPerPage":1,"Resources":[{"id":"tls-1","userName":"tls"}]}'
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/scim+json")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"#;

/// Killed (by PID) when dropped.
pub struct TlsStandIn {
    child: Child,
    port: u16,
}

impl TlsStandIn {
    pub fn start() -> TlsStandIn {
        TlsStandIn::start_with("server.pem", "server.key")
    }

    /// A stand-in whose certificate the second test CA ([`TlsStandIn::second_ca`]) signed.
    pub fn start_second() -> TlsStandIn {
        TlsStandIn::start_with("server2.pem", "server2.key")
    }

    fn start_with(cert: &str, key: &str) -> TlsStandIn {
        let python = super::scim2_server::binary().with_file_name("python3");
        for _ in 0..3 {
            let port = super::scim2_server::free_port();
            let child = Command::new(&python)
                .arg("-c")
                .arg(SCRIPT)
                .arg(port.to_string())
                .arg(tls_file(cert))
                .arg(tls_file(key))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap_or_else(|e| panic!("could not start {}: {e}", python.display()));
            let mut server = TlsStandIn { child, port };
            if super::scim2_server::wait_for_port(&mut server.child, port, Duration::from_secs(20))
            {
                return server;
            }
        }
        panic!("the TLS stand-in server did not start");
    }

    /// `https://127.0.0.1:PORT/v2`.
    pub fn base_url(&self) -> String {
        format!("https://127.0.0.1:{}/v2", self.port)
    }

    /// The PEM file of the CA that signed the server's certificate.
    pub fn ca_bundle() -> PathBuf {
        tls_file("ca.pem")
    }

    /// The PEM file of the second test CA, which signed [`TlsStandIn::start_second`]'s.
    pub fn second_ca() -> PathBuf {
        tls_file("ca2.pem")
    }
}

impl Drop for TlsStandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tls_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support/tls")
        .join(name)
}
