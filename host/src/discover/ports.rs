//! Listening TCP ports per process: sockets in LISTEN state from /proc/net/tcp{,6}, matched to
//! processes through the socket inodes in /proc/PID/fd.
use std::collections::{HashMap, HashSet};

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

/// Ports each of `pids` listens on. Reads the network tables of the host namespace and of each
/// process's own namespace (containers), so a containerised service is found by its port too.
pub fn listening_ports_by_pid(pids: &[u32]) -> HashMap<u32, HashSet<u16>> {
    let mut result = HashMap::new();
    for &pid in pids {
        let mut inodes = HashMap::new();
        for table in ["tcp", "tcp6"] {
            if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) {
                inodes.extend(listening_inodes(&text));
            }
        }
        if inodes.is_empty() {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        let ports: HashSet<u16> = fds
            .filter_map(|fd| {
                let target = std::fs::read_link(fd.ok()?.path()).ok()?;
                let inode = target
                    .to_str()?
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .parse::<u64>()
                    .ok()?;
                inodes.get(&inode).copied()
            })
            .collect();
        if !ports.is_empty() {
            result.insert(pid, ports);
        }
    }
    result
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
    fn finds_a_port_this_process_listens_on() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let pid = std::process::id();
        let ports = listening_ports_by_pid(&[pid]);
        assert!(
            ports.get(&pid).is_some_and(|p| p.contains(&port)),
            "{ports:?}"
        );
    }
}
