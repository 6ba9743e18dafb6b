//! Listening TCP ports per process: sockets in LISTEN state from /proc/net/tcp{,6}, matched to
//! processes through the socket inodes in /proc/PID/fd.
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

const TCP_LISTEN: &str = "0A";

/// Socket inode -> local port, for listening sockets in a /proc/net/tcp-format table.
fn listening_inodes(table: &str) -> HashMap<u64, u16> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.get(3) != Some(&TCP_LISTEN) {
                return None;
            }
            let port = u16::from_str_radix(fields.get(1)?.rsplit(':').next()?, 16).ok()?;
            let inode = fields.get(9)?.parse().ok()?;
            Some((inode, port))
        })
        .collect()
}

/// Which of the `wanted` ports each of `pids` listens on. The agent asks this on every scan for
/// the services still waiting for their port, so the TCP tables are read once per network
/// namespace (a containerised service listens in its own) and a process's sockets are listed
/// only when a wanted port is listening in its namespace.
pub fn listening_ports_by_pid(pids: &[u32], wanted: &HashSet<u16>) -> HashMap<u32, HashSet<u16>> {
    let mut by_namespace: HashMap<PathBuf, HashMap<u64, u16>> = HashMap::new();
    let mut result = HashMap::new();
    for &pid in pids {
        let uncached;
        let inodes = match std::fs::read_link(format!("/proc/{pid}/ns/net")) {
            Ok(namespace) => by_namespace
                .entry(namespace)
                .or_insert_with(|| wanted_listening_inodes(pid, wanted)),
            Err(_) => {
                uncached = wanted_listening_inodes(pid, wanted);
                &uncached
            }
        };
        if inodes.is_empty() {
            continue;
        }
        let ports = socket_ports(pid, inodes);
        if !ports.is_empty() {
            result.insert(pid, ports);
        }
    }
    result
}

/// Socket inode -> port of the `wanted` ports listening in `pid`'s network namespace.
fn wanted_listening_inodes(pid: u32, wanted: &HashSet<u16>) -> HashMap<u64, u16> {
    let mut inodes = HashMap::new();
    for table in ["tcp", "tcp6"] {
        if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) {
            inodes.extend(
                listening_inodes(&text)
                    .into_iter()
                    .filter(|(_, port)| wanted.contains(port)),
            );
        }
    }
    inodes
}

/// The ports of `inodes` among the sockets `pid` holds open.
fn socket_ports(pid: u32, inodes: &HashMap<u64, u16>) -> HashSet<u16> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return HashSet::new();
    };
    fds.filter_map(|fd| {
        let target = std::fs::read_link(fd.ok()?.path()).ok()?;
        let inode = target
            .to_str()?
            .strip_prefix("socket:[")?
            .strip_suffix(']')?
            .parse::<u64>()
            .ok()?;
        inodes.get(&inode).copied()
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_listening_sockets_only() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 12346 1 0000000000000000 100 0 0 10 0
";
        let inodes = listening_inodes(table);
        assert_eq!(inodes, HashMap::from([(12345, 8080)]));
    }

    #[test]
    fn finds_the_wanted_ports_this_process_listens_on() {
        let wanted = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = |l: &std::net::TcpListener| l.local_addr().unwrap().port();
        let pid = std::process::id();
        let ports = listening_ports_by_pid(&[pid], &HashSet::from([port(&wanted)]));
        assert_eq!(ports.get(&pid), Some(&HashSet::from([port(&wanted)])));
        let both = HashSet::from([port(&wanted), port(&other)]);
        assert_eq!(listening_ports_by_pid(&[pid], &both).get(&pid), Some(&both));
    }
}
