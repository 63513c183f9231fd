//! Real cluster hosts in one process (`harness`): heartbeats and forwarding between them
//! (`forward`), and hosts restarted on new cluster addresses (`restart`).

mod forward;
mod harness;
mod restart;
