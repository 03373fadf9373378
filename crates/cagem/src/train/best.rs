//! The best checkpoint of a run with a validation split (`--valid-fraction`): after each
//! periodic evaluation of that split the model is compared with the best so far, by the
//! validation error of q(y|x) where the split has labels (ties go to the higher validation ELBO),
//! by the validation ELBO otherwise; a better one is written to RUN/best.safetensors. The best so
//! far lives in the training state, so a resume keeps it; early stopping (`--patience N`) counts
//! the evaluations since it.

use serde::{Deserialize, Serialize};

pub const BEST_FILE: &str = "best.safetensors";

/// The best validation evaluation so far.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Best {
    /// The epoch whose weights best.safetensors holds.
    pub epoch: usize,
    /// What chose it: "error_q" (lower is better) or "elbo" (higher is better), of the split
    /// whose keys start with `prefix` in metrics.jsonl.
    pub by: String,
    pub value: f64,
    /// The validation ELBO of that epoch (the tie-break of equal errors).
    pub elbo: f64,
    /// Evaluations since that epoch's without improvement.
    pub evals_since: usize,
}

/// The criterion of an evaluated epoch's `record` (keys `{prefix}error_q`, `{prefix}elbo`):
/// (by, value, elbo), or None when the ELBO is missing or not finite.
pub fn criterion(record: &serde_json::Value, prefix: &str) -> Option<(&'static str, f64, f64)> {
    let get = |k: &str| record.get(format!("{prefix}{k}")).and_then(|v| v.as_f64());
    let elbo = get("elbo").filter(|e| e.is_finite())?;
    Some(match get("error_q") {
        Some(e) => ("error_q", e, elbo),
        None => ("elbo", elbo, elbo),
    })
}

/// Updates `best` with the evaluation of `epoch`; true when it is the new best.
pub fn update(best: &mut Option<Best>, epoch: usize, record: &serde_json::Value, prefix: &str) -> bool {
    let Some((by, value, elbo)) = criterion(record, prefix) else {
        if let Some(b) = best {
            b.evals_since += 1;
        }
        return false;
    };
    let better = match best {
        None => true,
        Some(b) if b.by != by => true, // the split's labels changed meaning: start again
        Some(b) if by == "elbo" => value > b.value,
        Some(b) => value < b.value || (value == b.value && elbo > b.elbo),
    };
    if better {
        *best = Some(Best { epoch, by: by.to_string(), value, elbo, evals_since: 0 });
    } else if let Some(b) = best {
        b.evals_since += 1;
    }
    better
}

impl Best {
    /// "validation error of q(y|x) 4.17 %" or "validation ELBO −25.31".
    pub fn describe(&self) -> String {
        if self.by == "error_q" {
            format!("validation error of q(y|x) {:.2} %", 100.0 * self.value)
        } else {
            format!("validation ELBO {:.3}", self.value)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errors_choose_and_the_elbo_breaks_ties() {
        let mut best = None;
        assert!(update(&mut best, 1, &json!({"valid_error_q": 0.3, "valid_elbo": -50.0}), "valid_"));
        assert!(update(&mut best, 2, &json!({"valid_error_q": 0.2, "valid_elbo": -60.0}), "valid_"));
        assert!(!update(&mut best, 3, &json!({"valid_error_q": 0.25, "valid_elbo": -40.0}), "valid_"));
        assert!(!update(&mut best, 4, &json!({"valid_error_q": 0.2, "valid_elbo": -61.0}), "valid_"));
        assert_eq!(best.as_ref().map(|b| (b.epoch, b.evals_since)), Some((2, 2)));
        assert!(update(&mut best, 5, &json!({"valid_error_q": 0.2, "valid_elbo": -55.0}), "valid_"));
        assert_eq!(best.as_ref().map(|b| (b.epoch, b.evals_since)), Some((5, 0)));
        assert_eq!(best.unwrap().describe(), "validation error of q(y|x) 20.00 %");
    }

    #[test]
    fn without_labels_the_elbo_chooses_and_non_finite_never_wins() {
        let mut best = None;
        assert!(update(&mut best, 1, &json!({"test_elbo": -50.0}), "test_"));
        assert!(!update(&mut best, 2, &json!({"test_elbo": f64::NAN}), "test_"));
        assert!(!update(&mut best, 3, &json!({"test_elbo": -51.0}), "test_"));
        assert!(update(&mut best, 4, &json!({"test_elbo": -49.0}), "test_"));
        let b = best.unwrap();
        assert_eq!((b.epoch, b.by.as_str(), b.evals_since), (4, "elbo", 0));
    }
}
