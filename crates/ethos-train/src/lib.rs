//! Training and evaluation of ethos: losses, optimiser and schedules, the resumable trainer,
//! metrics, reports, and long-video inference into behaviour timelines.
