//! The stop flag: SIGTERM, SIGUSR1 (SLURM's warning before the time limit) and SIGINT ask a long
//! step to stop at the next safe point (a checkpoint, the end of a video), so a later start
//! continues. Installed once per process, whichever step asks first. A second SIGINT (Ctrl-C
//! twice) ends the process at once.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

use ethos_core::Error;

use crate::Result;

/// The process's stop flag, set by SIGTERM, SIGUSR1 or SIGINT (handlers installed on first use).
pub fn stop_flag() -> Result<Arc<AtomicBool>> {
    static FLAG: OnceLock<std::result::Result<Arc<AtomicBool>, String>> = OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        // Registered before the flag handler: it sees the flag as the previous signal left it.
        signal_hook::flag::register_conditional_shutdown(
            signal_hook::consts::SIGINT,
            130,
            Arc::clone(&flag),
        )
        .map_err(|e| format!("installing the signal handler: {e}"))?;
        for sig in [
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGUSR1,
            signal_hook::consts::SIGINT,
        ] {
            signal_hook::flag::register(sig, Arc::clone(&flag))
                .map_err(|e| format!("installing the signal handler: {e}"))?;
        }
        Ok(flag)
    })
    .clone()
    .map_err(Error::internal)
}
