//! Interruption: what `fp8q` removes when it is stopped by SIGINT, SIGTERM
//! or SIGHUP.
//!
//! A run writes everything under a temporary folder next to the output (and
//! holds the output's name with an empty placeholder, see [`super::output`]).
//! The library keeps a list of these paths; [`remove_on_signals`] (called
//! by the `fp8q` binary, not by the library itself) starts a thread that, on
//! one of those signals, removes them and then ends the process the way the
//! signal would have. Committing an output and removing it on a signal are
//! mutually exclusive (both hold one lock), so an interrupted run either
//! leaves a complete output or none, and never a replaced output half-moved.
//!
//! SIGKILL and crashes cannot be caught: the next run that writes into the
//! same folder finds the stale temporary folder and removes it (see
//! [`super::output`]).

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

/// A path a run owns until it commits.
#[derive(Clone, Debug)]
pub(crate) enum Owned {
    /// A temporary folder, removed with everything in it.
    Folder(PathBuf),
    /// The empty file or folder that claims the output's name, removed only
    /// while it is still empty.
    Placeholder(PathBuf),
}

impl Owned {
    /// Removes the path (best effort: the process is about to end, or the
    /// run failed, and there is nobody left to report to).
    pub(crate) fn remove(&self) {
        match self {
            Owned::Folder(path) => {
                // A writer thread may still create a file in it: retry.
                for _ in 0..20 {
                    match std::fs::remove_dir_all(path) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                            std::thread::sleep(std::time::Duration::from_millis(5))
                        }
                        _ => return,
                    }
                }
            }
            Owned::Placeholder(path) => match std::fs::symlink_metadata(path) {
                Ok(m) if m.is_dir() => {
                    let _ = std::fs::remove_dir(path);
                }
                Ok(m) if m.is_file() && m.len() == 0 => {
                    let _ = std::fs::remove_file(path);
                }
                _ => {}
            },
        }
    }
}

#[derive(Debug)]
struct State {
    interrupted: Option<i32>,
    next_id: u64,
    owned: Vec<(u64, Vec<Owned>)>,
}

static STATE: Mutex<State> = Mutex::new(State { interrupted: None, next_id: 0, owned: Vec::new() });

fn lock() -> MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// The paths of one run, listed for removal on a signal until dropped or
/// committed.
#[derive(Debug)]
pub struct Registration(u64);

/// Lists a temporary folder of the caller's (removed with everything in it)
/// for removal on a signal, until the returned value is dropped. `None` when
/// a signal has already been received.
pub fn remove_folder_on_signal(path: PathBuf) -> Option<Registration> {
    register(vec![Owned::Folder(path)])
}

/// Lists `paths` for removal on a signal; `None` when a signal has already
/// been received (the process is ending).
pub(crate) fn register(paths: Vec<Owned>) -> Option<Registration> {
    let mut state = lock();
    if state.interrupted.is_some() {
        return None;
    }
    let id = state.next_id;
    state.next_id += 1;
    state.owned.push((id, paths));
    Some(Registration(id))
}

impl Registration {
    /// Runs `commit` unless a signal was received, with signal handling held
    /// off until it returns; on success the paths are no longer removed on a
    /// signal. `None` when interrupted.
    pub(crate) fn commit<T, E>(&self, commit: impl FnOnce() -> Result<T, E>) -> Option<Result<T, E>> {
        let mut state = lock();
        if state.interrupted.is_some() {
            return None;
        }
        let result = commit();
        if result.is_ok() {
            state.owned.retain(|(id, _)| *id != self.0);
        }
        Some(result)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock().owned.retain(|(id, _)| *id != self.0);
    }
}

/// Starts the thread that, on SIGINT, SIGTERM or SIGHUP, removes the
/// temporary files of every run in progress and ends the process as the
/// signal would have (so the exit status says which signal). For binaries:
/// the library never installs signal handlers by itself.
pub fn remove_on_signals() -> std::io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new().name("fp8q-signals".into()).spawn(move || {
        if let Some(signal) = signals.forever().next() {
            on_signal(signal);
        }
    })?;
    Ok(())
}

fn on_signal(signal: i32) {
    // The lock is never released: no run commits after this point.
    let mut state = lock();
    state.interrupted = Some(signal);
    let owned: Vec<Owned> = state.owned.iter().flat_map(|(_, paths)| paths.iter().cloned()).collect();
    for path in &owned {
        path.remove();
    }
    let name = match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        _ => "SIGHUP",
    };
    if owned.is_empty() {
        eprintln!("fp8q: interrupted by {name}");
    } else {
        eprintln!("fp8q: interrupted by {name}: the output was not written, and its temporary files were removed");
    }
    let _ = signal_hook::low_level::emulate_default_handler(signal);
    std::process::exit(128 + signal);
}

/// Blocks forever when a signal is being handled (the process is about to
/// end), so the main thread does not report the errors that removing its
/// files mid-run causes; returns at once otherwise.
pub fn wait_if_interrupted() {
    drop(lock());
}
