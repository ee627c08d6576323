//! The server's memory and CPU time, read from `/proc/<pid>`.

/// `/proc` reports CPU time in clock ticks of `USER_HZ`, fixed at 100 on Linux.
const TICKS_PER_SEC: f64 = 100.0;

/// The measured server process.
pub struct Server {
    pid: u32,
}

impl Server {
    /// The process `pid`.
    pub fn new(pid: u32) -> Self {
        Self { pid }
    }

    /// Resident memory, KiB (`VmRSS`).
    pub fn rss_kib(&self) -> Result<u64, String> {
        let status = read(&format!("/proc/{}/status", self.pid))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .ok_or_else(|| "no VmRSS".into())
    }

    /// User plus system CPU time used so far, seconds.
    pub fn cpu_secs(&self) -> Result<f64, String> {
        let stat = read(&format!("/proc/{}/stat", self.pid))?;
        // Fields after the parenthesized command name; utime and stime are the 14th and 15th.
        let after = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .ok_or("unreadable stat")?;
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
        match (ticks(11), ticks(12)) {
            (Some(utime), Some(stime)) => Ok((utime + stime) as f64 / TICKS_PER_SEC),
            _ => Err("unreadable stat".into()),
        }
    }
}

fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))
}
