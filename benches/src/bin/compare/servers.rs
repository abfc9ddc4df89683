//! The servers on the host's loopback that every guest measures against. They bind 127.0.0.1 only.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use host_switch_benches::sys::{self, Proc};

/// The file nginx serves (6 bytes, as in PEERS.md).
pub(crate) const HTTP_PATH: &str = "/hello.txt";

#[derive(Debug)]
pub(crate) struct Servers {
    pub(crate) iperf3: Option<u16>,
    /// One iperf3 server per client of the parallel-streams figures (an iperf3 server runs one
    /// test at a time).
    pub(crate) iperf3_parallel: Vec<u16>,
    pub(crate) sockperf_udp: Option<u16>,
    pub(crate) sockperf_tcp: Option<u16>,
    pub(crate) nginx: Option<u16>,
    pub(crate) idle: IdleServer,
    _procs: Vec<Proc>,
}

impl Servers {
    /// Starts the servers, with `parallel` extra iperf3 servers for the parallel-streams figures.
    pub(crate) fn start(
        dir: &Path,
        tools: &crate::Tools,
        parallel: usize,
    ) -> Result<Servers, String> {
        let log = dir.join("servers.log");
        let mut procs = Vec::new();
        let mut iperf3 = None;
        let mut iperf3_parallel = Vec::new();
        if tools.iperf3 {
            for i in 0..=parallel {
                let port = sys::free_port()?;
                procs.push(Proc::spawn(
                    "iperf3 -s",
                    Command::new("iperf3").args(["-s", "-B", "127.0.0.1", "-p", &port.to_string()]),
                    &log,
                )?);
                wait_tcp(port)?;
                if i == 0 {
                    iperf3 = Some(port);
                } else {
                    iperf3_parallel.push(port);
                }
            }
        }
        let (mut sockperf_udp, mut sockperf_tcp) = (None, None);
        if tools.sockperf {
            for tcp in [false, true] {
                let port = sys::free_port()?;
                let mut cmd = Command::new("sockperf");
                cmd.args(["server", "-i", "127.0.0.1", "-p", &port.to_string()]);
                if tcp {
                    cmd.arg("--tcp");
                }
                procs.push(Proc::spawn("sockperf server", &mut cmd, &log)?);
                if tcp {
                    wait_tcp(port)?;
                    sockperf_tcp = Some(port);
                } else {
                    std::thread::sleep(Duration::from_millis(300));
                    sockperf_udp = Some(port);
                }
            }
        }
        let mut nginx = None;
        if tools.nginx {
            let port = sys::free_port()?;
            let root = dir.join("www");
            std::fs::create_dir_all(&root).map_err(|e| e.to_string())?;
            std::fs::write(root.join(&HTTP_PATH[1..]), "hello\n").map_err(|e| e.to_string())?;
            let conf = dir.join("nginx.conf");
            std::fs::write(&conf, nginx_conf(dir, &root, port)).map_err(|e| e.to_string())?;
            procs.push(Proc::spawn(
                "nginx",
                Command::new(nginx_binary())
                    .arg("-p")
                    .arg(dir)
                    .arg("-e")
                    .arg(dir.join("nginx-error.log"))
                    .arg("-c")
                    .arg(&conf),
                &log,
            )?);
            wait_tcp(port)?;
            nginx = Some(port);
        }
        Ok(Servers {
            iperf3,
            iperf3_parallel,
            sockperf_udp,
            sockperf_tcp,
            nginx,
            idle: IdleServer::start()?,
            _procs: procs,
        })
    }
}

fn nginx_binary() -> PathBuf {
    sys::which("nginx").unwrap_or_else(|| PathBuf::from("/usr/sbin/nginx"))
}

fn nginx_conf(dir: &Path, root: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        "worker_processes 1;\ndaemon off;\nmaster_process on;\npid {d}/nginx.pid;\n\
         error_log {d}/nginx-error.log;\nevents {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  keepalive_requests 100000000;\n\
           client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
           server {{ listen 127.0.0.1:{port}; root {}; }}\n}}\n",
        root.display()
    )
}

fn wait_tcp(port: u16) -> Result<(), String> {
    sys::wait_for(Duration::from_secs(5), || {
        TcpStream::connect(("127.0.0.1", port))
            .map(drop)
            .map_err(|e| format!("server on 127.0.0.1:{port}: {e}"))
    })
}

/// Accepts connections on 127.0.0.1 and holds them open until told to drop them.
#[derive(Debug)]
pub(crate) struct IdleServer {
    pub(crate) port: u16,
    held: Arc<Mutex<Vec<TcpStream>>>,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl IdleServer {
    fn start() -> Result<IdleServer, String> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let held = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, a, s) = (held.clone(), accepted.clone(), stop.clone());
        std::thread::Builder::new()
            .name("idle-server".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if s.load(Ordering::Relaxed) {
                        break;
                    }
                    if let Ok(stream) = stream
                        && let Ok(mut held) = h.lock()
                    {
                        held.push(stream);
                        a.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(IdleServer {
            port,
            held,
            accepted,
            stop,
        })
    }

    pub(crate) fn held(&self) -> usize {
        self.held.lock().map(|h| h.len()).unwrap_or(0)
    }

    /// Closes every held connection and resets the count.
    pub(crate) fn drop_all(&self) {
        if let Ok(mut h) = self.held.lock() {
            h.clear();
        }
        self.accepted.store(0, Ordering::Relaxed);
    }
}

impl Drop for IdleServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        self.drop_all();
    }
}
