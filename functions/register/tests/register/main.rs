//! The register handler's tests, one binary: success, bad input, faults and races, on the
//! helpers of `common` (a valid form, request builders, and the checks every rejected request
//! must pass).
mod common;

mod bad_input;
mod faults;
mod race;
mod success;
