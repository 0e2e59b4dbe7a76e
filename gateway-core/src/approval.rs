//! Approval stage: pause a call until enough distinct reviewers approve it.
//! (Stub; lands with the approvals issue.)
