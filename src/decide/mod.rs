//! Decide: which label a volume must carry. Pure where it can be: labels as values
//! (`context`), pairs (`mcs`), the one decision from holders (`labels`), the plan for
//! one entry as data (`plan`); and the resting label the policy gives a path
//! (`policy`: file_contexts, `uniform`: one lookup standing for a whole pool), and
//! what the policy allows a guest (`policy_query`, for `check-path`).

pub mod context;
pub mod labels;
pub mod mcs;
pub mod plan;
pub mod policy;
pub mod policy_query;
pub mod uniform;
