//! Training logs: JSON lines on disk and a progress bar on the terminal.

use std::{
    fs::{File, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
    time::Duration,
};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::Result;

/// One line of `log.jsonl`: the losses averaged over a log interval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    /// The step the interval ended at.
    pub step: u64,
    /// Images seen since the run began (over all resumes).
    pub images: u64,
    /// Training wall time since the run began, in seconds (over all resumes).
    pub wall_s: f64,
    /// Throughput over the interval.
    pub images_per_s: f64,
    /// Each loss's mean over the interval, by name (sorted).
    pub losses: std::collections::BTreeMap<String, f64>,
    /// Each metric's mean over the interval (mean logits, accuracies: numbers
    /// to watch that are not minimised and not guarded).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub metrics: std::collections::BTreeMap<String, f64>,
}

/// The largest log read (1 GiB: millions of records).
pub const MAX_LOG_BYTES: u64 = 1 << 30;

/// A log's text, read within [`MAX_LOG_BYTES`]; bytes that are not UTF-8
/// (a damaged line) are replaced, so that the line is dropped as unreadable.
fn read_text(path: &Path) -> Result<String> {
    let bytes = agesynth_core::io::read_limited(path, MAX_LOG_BYTES, "a training log")?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Appends [`LogRecord`]s to a JSON-lines file, one flushed line each.
pub struct JsonlLog {
    path: PathBuf,
    file: File,
}

impl JsonlLog {
    /// Opens `path` for appending, creating it. When resuming from step
    /// `resume_step`, lines of later steps (logged after that checkpoint by
    /// the interrupted run) are dropped first, so the log reads as one run.
    pub fn open(path: impl AsRef<Path>, resume_step: Option<u64>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if let (Some(step), true) = (resume_step, path.is_file()) {
            // Keep the kept lines' text as it is: re-serialising parsed floats
            // could change their last digit.
            let text = read_text(&path)?;
            let mut kept = String::new();
            for line in text.lines() {
                #[derive(Deserialize)]
                struct StepOnly {
                    step: u64,
                }
                if let Ok(r) = serde_json::from_str::<StepOnly>(line) {
                    if r.step <= step {
                        kept.push_str(line);
                        kept.push('\n');
                    }
                }
            }
            agesynth_core::io::atomic_write_bytes(&path, kept.as_bytes())?;
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| agesynth_core::Error::io("creating folder", dir, e))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| agesynth_core::Error::io("opening", &path, e))?;
        Ok(JsonlLog { path, file })
    }

    /// Appends one record.
    pub fn append(&mut self, record: &LogRecord) -> Result<()> {
        let mut line = serde_json::to_vec(record).map_err(|source| agesynth_core::Error::Json {
            path: self.path.clone(),
            source,
        })?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|_| self.file.flush())
            .map_err(|e| agesynth_core::Error::io("appending to", &self.path, e))?;
        Ok(())
    }
}

/// Reads every record of a JSON-lines log; a torn last line (a crash while
/// appending) is ignored, any other bad line is an error naming the file.
pub fn read_log(path: impl AsRef<Path>) -> Result<Vec<LogRecord>> {
    let path = path.as_ref();
    let text = read_text(path)?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str(line) {
            Ok(r) => out.push(r),
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => {}
            Err(source) => {
                return Err(agesynth_core::Error::Json {
                    path: path.to_path_buf(),
                    source,
                }
                .into())
            }
        }
    }
    Ok(out)
}

/// A terminal progress bar with images/s and ETA; hidden when stderr is not a
/// terminal (then [`Progress::plain_lines`] is true and the trainer prints a
/// plain line per log interval instead).
pub struct Progress {
    bar: ProgressBar,
    plain: bool,
}

impl Progress {
    /// A bar for steps `start..total`; `visible` = false hides it.
    pub fn new(start: u64, total: u64, visible: bool) -> Self {
        let bar = ProgressBar::new(total);
        let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
        if visible && tty {
            bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(4));
        } else {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} steps  {msg}  ETA {eta}",
        ) {
            bar.set_style(style);
        }
        bar.set_position(start);
        bar.reset_eta();
        bar.enable_steady_tick(Duration::from_millis(250));
        Progress {
            bar,
            plain: visible && !tty,
        }
    }

    /// Whether plain log lines should be printed (visible but no terminal).
    pub fn plain_lines(&self) -> bool {
        self.plain
    }

    /// Moves to `step` with a status message.
    pub fn update(&self, step: u64, msg: String) {
        self.bar.set_position(step);
        self.bar.set_message(msg);
    }

    /// Prints a line above the bar.
    pub fn println(&self, line: impl AsRef<str>) {
        if self.bar.is_hidden() {
            if self.plain {
                // Never panics: a closed stderr (`2>&1 | head`) must not
                // stop training (the signal handling decides what happens).
                agesynth_core::console::err(format_args!("{}", line.as_ref()), true);
            }
        } else {
            self.bar.println(line);
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(step: u64) -> LogRecord {
        LogRecord {
            step,
            images: step * 4,
            wall_s: step as f64,
            images_per_s: 4.0,
            losses: [("d".to_string(), 0.5)].into_iter().collect(),
            metrics: Default::default(),
        }
    }

    #[test]
    fn append_read_and_truncate_on_resume() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        let mut log = JsonlLog::open(&path, None).unwrap();
        for s in 1..=5 {
            log.append(&rec(s)).unwrap();
        }
        drop(log);
        assert_eq!(read_log(&path).unwrap().len(), 5);
        // A torn last line is ignored.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"step\": 6, \"ima")
            .unwrap();
        assert_eq!(read_log(&path).unwrap().len(), 5);
        // Resuming from step 3 drops steps 4..: the log reads as one run.
        let mut log = JsonlLog::open(&path, Some(3)).unwrap();
        log.append(&rec(4)).unwrap();
        let steps: Vec<u64> = read_log(&path).unwrap().iter().map(|r| r.step).collect();
        assert_eq!(steps, vec![1, 2, 3, 4]);
        // The kept lines are byte for byte what was written.
        let text = std::fs::read_to_string(&path).unwrap();
        let first = serde_json::to_string(&rec(1)).unwrap();
        assert!(text.starts_with(&first), "{text}");
    }
}
