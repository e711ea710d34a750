//! What the figures were measured on: the machine, the build and the source.

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory: String,
    pub kernel: String,
    /// The 1, 5 and 15 minute load averages when the run started: a busy machine lowers
    /// every figure (the load generator, the hub and PostgreSQL share its cores).
    pub load_at_start: String,
    pub profile: &'static str,
    pub date: String,
    /// The commit of the working directory the bench was started from, if it is a checkout.
    pub git: Option<String>,
}

impl Machine {
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec![
            format!(
                "machine   {} CPUs ({}), {} memory, Linux {}",
                self.cpus, self.cpu_model, self.memory, self.kernel
            ),
            format!(
                "load      {} (1, 5, 15 min) at the start",
                self.load_at_start
            ),
            format!("build     {}", self.profile),
            format!("date      {}", self.date),
        ];
        if let Some(g) = &self.git {
            lines.push(format!("source    {g}"));
        }
        lines
    }
}

pub fn describe() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| kib_field(&m, "MemTotal:"))
        .map(|kib| format!("{:.1} GiB", kib as f64 / 1048576.0))
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    Machine {
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu_model,
        memory,
        kernel,
        load_at_start: load_average(),
        profile: if cfg!(debug_assertions) {
            "debug — WARNING: not a release build, the figures mean little (cargo run --release -p iyshub -- bench)"
        } else {
            "release"
        },
        date: jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .map(|t| t.to_string())
            .unwrap_or_default(),
        git: git_commit(),
    }
}

/// The commit the binary was built from when the build said so (`IYSHUB_BUILD_COMMIT=…
/// cargo build`), else the working directory's checkout (and whether it has uncommitted changes).
fn git_commit() -> Option<String> {
    if let Some(commit) = option_env!("IYSHUB_BUILD_COMMIT").filter(|c| !c.is_empty()) {
        return Some(format!("git {commit} (built from it)"));
    }
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let commit = run(&["rev-parse", "--short=10", "HEAD"])?;
    let dirty =
        run(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(format!(
        "git {commit}{} (the working directory's checkout)",
        if dirty {
            " with uncommitted changes"
        } else {
            ""
        }
    ))
}

/// "0.12 0.30 0.25" from /proc/loadavg.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// The process's peak resident set size (VmHWM), in bytes; Linux only.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    kib_field(&status, "VmHWM:").map(|kib| kib * 1024)
}
