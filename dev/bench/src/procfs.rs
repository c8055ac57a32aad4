//! What Linux's `/proc` says about a process: CPU time, peak memory, and who listens on a port.

use std::{fs, net::Ipv4Addr};

/// `/proc/<pid>/stat` counts in USER_HZ, which Linux fixes at 100 for user space.
const USER_HZ: f64 = 100.0;

/// User + system CPU time of the whole process (all its threads) so far, in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    parse_cpu_seconds(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The same for this process.
pub fn own_cpu_seconds() -> Option<f64> {
    parse_cpu_seconds(&fs::read_to_string("/proc/self/stat").ok()?)
}

fn parse_cpu_seconds(stat: &str) -> Option<f64> {
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

/// A `kB` line of `/proc/<pid>/status`, such as `VmHWM` (peak resident set) or `VmRSS`.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let value = line.strip_prefix(field)?.strip_prefix(':')?;
        value.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

/// The process listening on 127.0.0.1:`port` (or on all IPv4 addresses), found through the
/// socket's inode in `/proc/net/tcp` and the processes' open file descriptors.
pub fn pid_listening_on(port: u16) -> Option<u32> {
    let table = fs::read_to_string("/proc/net/tcp").ok()?;
    let inode = table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (addr, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
        let (ip, listen_port) = addr.split_once(':')?;
        let ip = Ipv4Addr::from(u32::from_str_radix(ip, 16).ok()?.swap_bytes());
        let listening = *state == "0A" && u16::from_str_radix(listen_port, 16).ok()? == port;
        (listening && (ip.is_loopback() || ip.is_unspecified())).then(|| inode.to_string())
    })?;
    let wanted = format!("socket:[{inode}]");
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            if fs::read_link(fd.path()).is_ok_and(|target| target.as_os_str() == wanted.as_str()) {
                return Some(pid);
            }
        }
    }
    None
}

/// The local ports of the TCP connections process `pid` has open to 127.0.0.1:`port` (each
/// connection has its own), found through the sockets' inodes as [`pid_listening_on`] does.
pub fn connections_to(pid: u32, port: u16) -> Option<Vec<u16>> {
    let inodes: Vec<String> = fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .flatten()
        .filter_map(|fd| {
            let target = fs::read_link(fd.path()).ok()?;
            let target = target.to_str()?;
            Some(target.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let table = fs::read_to_string(format!("/proc/{pid}/net/tcp")).ok()?;
    let mut ports: Vec<u16> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, remote, state, inode) =
                (fields.get(1)?, fields.get(2)?, fields.get(3)?, fields.get(9)?);
            let remote_port = u16::from_str_radix(remote.split_once(':')?.1, 16).ok()?;
            // 01: ESTABLISHED.
            (*state == "01" && remote_port == port && inodes.iter().any(|i| i == inode))
                .then(|| u16::from_str_radix(local.split_once(':')?.1, 16).ok())?
        })
        .collect();
    ports.sort_unstable();
    Some(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_figures() {
        let stat = "123 (a (weird) name) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
        assert_eq!(parse_cpu_seconds(stat), Some(3.0));
        assert!(own_cpu_seconds().is_some());
        assert!(status_kib(std::process::id(), "VmHWM").is_some_and(|kib| kib > 0));
    }

    #[test]
    fn finds_the_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(pid_listening_on(port), Some(std::process::id()));
        let client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let local = client.local_addr().unwrap().port();
        assert_eq!(connections_to(std::process::id(), port), Some(vec![local]));
    }
}
