//! Tollgate's SSH family: `ssh_exec` on hosts, argv-first so that what policy
//! saw is exactly what runs. [`command`] turns a call's `argv` or `command`
//! into the words that will run (or a raw shell call) and follows wrappers
//! (`sudo`, `env`, `xargs`, `sh -c`...) to every program the call starts;
//! [`transport`] holds authenticated russh sessions to pinned hosts and runs
//! one command line with caps, a deadline and cancellation that ends the
//! remote process.

pub mod command;
pub mod transport;
