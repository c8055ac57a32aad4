//! A function binary running as a Lambda instance would: its own process, the runtime's
//! environment, output collected the way CloudWatch collects it (every line, stdout and stderr).

use std::{
    ffi::OsStr,
    io::Read,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::Value;

/// A spawned function process, killed (and reaped) when dropped. Its stdout and stderr are read
/// continuously by two threads into shared buffers, so it never blocks on a full pipe and a test
/// can look at its log lines at any time.
pub struct FunctionProcess {
    child: Child,
    spawned_at: Instant,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl FunctionProcess {
    /// Spawns `program` with `env` added to this process's environment (which it inherits, e.g.
    /// `AWS_ENDPOINT_URL_*`, credentials, `AWS_REGION`), typically
    /// [`crate::Emulator::function_env`] plus the function's own variables; stdin is closed.
    pub fn spawn<I, K, V>(program: impl AsRef<OsStr>, env: I) -> std::io::Result<FunctionProcess>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        let mut command = Command::new(program);
        command.envs(env);
        Self::spawn_command(command)
    }

    /// Spawns a prepared command (for arguments, `env_remove`, a working directory, ...); its
    /// stdio is replaced: stdin closed, stdout and stderr captured.
    pub fn spawn_command(mut command: Command) -> std::io::Result<FunctionProcess> {
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let spawned_at = Instant::now();
        let mut child = command.spawn()?;
        let stdout = capture(child.stdout.take());
        let stderr = capture(child.stderr.take());
        Ok(FunctionProcess { child, spawned_at, stdout, stderr })
    }

    /// The OS process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Taken just before the spawn: the start of a cold start.
    pub fn spawned_at(&self) -> Instant {
        self.spawned_at
    }

    /// Everything the process wrote to stdout so far (lossy UTF-8).
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
    }

    /// Everything the process wrote to stderr so far (lossy UTF-8).
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// The stdout lines that are JSON objects (structured log lines), in order.
    pub fn json_logs(&self) -> Vec<Value> {
        self.stdout()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(Value::is_object)
            .collect()
    }

    /// The JSON log lines whose `"event"` is `event`.
    pub fn json_logs_with_event(&self, event: &str) -> Vec<Value> {
        self.json_logs().into_iter().filter(|line| line["event"] == event).collect()
    }

    /// Waits (polling, at most `timeout`) until `check` holds for the stdout so far; whether it
    /// did. Output reaches the buffer a moment after the process writes it.
    pub async fn wait_for_stdout(&self, timeout: Duration, check: impl Fn(&str) -> bool) -> bool {
        let until = Instant::now() + timeout;
        loop {
            if check(&self.stdout()) {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The exit status, if the process has ended.
    pub fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }

    /// Waits (polling, at most `timeout`) for the process to end; its status, or `None` if it
    /// still runs. Afterwards its output is complete (the reader threads have seen end of file or
    /// are about to; wait for a specific line with [`Self::wait_for_stdout`]).
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let until = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                // Give the reader threads a moment to drain what the process wrote last.
                tokio::time::sleep(Duration::from_millis(20)).await;
                return Some(status);
            }
            if Instant::now() >= until {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Kills the process (if still running) and reaps it.
    pub fn kill(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads `pipe` to its end on a thread of its own, into the returned buffer.
fn capture(pipe: Option<impl Read + Send + 'static>) -> Arc<Mutex<Vec<u8>>> {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    if let Some(mut pipe) = pipe {
        let sink = Arc::clone(&buffer);
        std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            loop {
                match pipe.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink.lock().unwrap().extend_from_slice(&chunk[..n]),
                }
            }
        });
    }
    buffer
}
