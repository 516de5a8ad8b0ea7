//! A real etcd cluster for tests: `n` members of Debian's `etcd` (etcd-server) on free
//! loopback ports, data in a temporary directory, killed when dropped. Shared by the
//! integration tests and the library's own (`src/cluster/tests.rs` includes this file).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running etcd cluster of real `etcd` processes, killed on drop.
pub struct Etcd {
    members: Vec<Option<Child>>,
    /// What `etcdctl` needs besides the endpoints (TLS: the client's files).
    ctl: Vec<String>,
    /// How each member was started, to start it again.
    commands: Vec<Vec<String>>,
    /// Each member's client URL.
    pub endpoints: Vec<String>,
    dir: tempfile::TempDir,
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

impl Etcd {
    /// Starts `n` members and waits until the cluster answers (at most 30 s).
    pub fn start(n: usize) -> Etcd {
        Etcd::start_with(n, None)
    }

    /// The same, its clients served over TLS with client certificates when `tls` is
    /// given (`https://` URLs).
    pub fn start_with(n: usize, tls: Option<&Tls>) -> Etcd {
        let dir = tempfile::tempdir().expect("a directory for etcd's data");
        let scheme = if tls.is_some() { "https" } else { "http" };
        let extra: Vec<String> = tls.map_or_else(Vec::new, Tls::server_args);
        let ctl: Vec<String> = tls.map_or_else(Vec::new, Tls::client_args);
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let peers = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut commands = Vec::new();
        let mut endpoints = Vec::new();
        for (i, (client, peer)) in ports.iter().enumerate() {
            let data: PathBuf = dir.path().join(format!("m{i}"));
            let client_url = format!("{scheme}://127.0.0.1:{client}");
            let peer_url = format!("http://127.0.0.1:{peer}");
            let mut args: Vec<String> = [
                "--name",
                &format!("m{i}"),
                "--data-dir",
                &data.display().to_string(),
                "--listen-client-urls",
                &client_url,
                "--advertise-client-urls",
                &client_url,
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
                "--initial-cluster",
                &peers,
                "--initial-cluster-token",
                "svirt-pool-test",
                "--initial-cluster-state",
                "new",
                "--logger",
                "zap",
                "--log-outputs",
                "stderr",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            args.extend(extra.iter().cloned());
            commands.push(args);
            endpoints.push(client_url);
        }
        let mut etcd = Etcd {
            members: (0..n).map(|_| None).collect(),
            ctl,
            commands,
            endpoints,
            dir,
        };
        for i in 0..n {
            etcd.run(i);
        }
        etcd.wait_ready(Duration::from_secs(30));
        etcd
    }

    fn run(&mut self, i: usize) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("m{i}.log")))
            .unwrap();
        let child = Command::new("etcd")
            .args(&self.commands[i])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("run etcd (the etcd-server package)");
        self.members[i] = Some(child);
    }

    /// Waits until a write commits (the cluster has a leader and quorum).
    pub fn wait_ready(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let ok = Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .arg(format!("--endpoints={}", self.endpoints.join(",")))
                .args(&self.ctl)
                .args(["--command-timeout=2s", "put", "/ready", "1"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("run etcdctl (the etcd-client package)")
                .success();
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "etcd did not answer within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills member `i` at once (SIGKILL).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts member `i` again (on its data, as after a crash).
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.run(i);
    }

    /// The member that leads now, by `etcdctl endpoint status`.
    pub fn leader(&self) -> Option<usize> {
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoints.join(",")))
            .args(&self.ctl)
            .args(["--command-timeout=2s", "endpoint", "status", "-w", "json"])
            .output()
            .ok()?;
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let entries = status.as_array()?;
        entries.iter().find_map(|e| {
            let leader = e["Status"]["leader"].as_u64()?;
            let member = e["Status"]["header"]["member_id"].as_u64()?;
            let endpoint = e["Endpoint"].as_str()?;
            (leader == member)
                .then(|| self.endpoints.iter().position(|u| u == endpoint))
                .flatten()
        })
    }

    /// The directory its data and logs are in.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

/// Certificates made with `openssl` for a test: a CA, etcd's server certificate for
/// 127.0.0.1, a client certificate signed by the CA, and one signed by another CA.
pub struct Tls {
    dir: tempfile::TempDir,
}

impl Tls {
    /// Makes them in a new temporary directory.
    pub fn make() -> Tls {
        let dir = tempfile::tempdir().expect("a directory for certificates");
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .expect("run openssl");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        std::fs::write(
            dir.path().join("server.ext"),
            "subjectAltName = IP:127.0.0.1\nextendedKeyUsage = serverAuth\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("client.ext"),
            "extendedKeyUsage = clientAuth\n",
        )
        .unwrap();
        for ca in ["ca", "other-ca"] {
            openssl(&[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
                "-days",
                "2",
                "-subj",
                &format!("/CN=svirt-pool test {ca}"),
            ]);
        }
        for (name, ca, ext) in [
            ("server", "ca", "server.ext"),
            ("client", "ca", "client.ext"),
            ("stranger", "other-ca", "client.ext"),
        ] {
            openssl(&[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={name}"),
            ]);
            openssl(&[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                &format!("{ca}.pem"),
                "-CAkey",
                &format!("{ca}.key"),
                "-CAcreateserial",
                "-out",
                &format!("{name}.pem"),
                "-days",
                "2",
                "-extfile",
                ext,
            ]);
        }
        Tls { dir }
    }

    /// A file of it (`ca.pem`, `client.pem`, `client.key`, `stranger.pem`, …).
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn server_args(&self) -> Vec<String> {
        vec![
            "--client-cert-auth".into(),
            format!("--trusted-ca-file={}", self.file("ca.pem").display()),
            format!("--cert-file={}", self.file("server.pem").display()),
            format!("--key-file={}", self.file("server.key").display()),
        ]
    }

    fn client_args(&self) -> Vec<String> {
        vec![
            format!("--cacert={}", self.file("ca.pem").display()),
            format!("--cert={}", self.file("client.pem").display()),
            format!("--key={}", self.file("client.key").display()),
        ]
    }
}
