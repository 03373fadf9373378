//! Deliberate departures from the paper's model or objective, for ablations (issue 13: why
//! p(y|x) lags q(y|x)). Every one is off by default, saved with the run and refused on a resume
//! that would change it; `--help` and the README name each as a deviation.

use serde::{Deserialize, Serialize};

/// One departure from the paper.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Deviation {
    /// The warm-up temperature scales only the Gaussian KL terms (log p(z1|y,z2) + log p(z2)
    /// − log q(z2|x,y,z1) − log q(z1|x)); the categorical part log p(y|z2) − log q(y|z1,x) keeps
    /// weight 1 from the first step. The paper puts T on "the KL-terms", which we read as all.
    KlWarmupGaussianOnly,
    /// H_p's gradient also reaches q(z2|x,y,z1) (network and head), which appendix B forbids.
    HpGradToZ2,
    /// H_p = −log p(y_l|z2) with z2 ~ q(z2|x,y_l,z1) drawn under the true label only, instead of
    /// −log Σ_y' q(y'|z1,x) p(y_l|z2_y') (so H_p no longer trains q(y|z1,x)).
    HpTrueLabelZ2,
    /// q(z2|·) without the skip connection from x: q(z2|y,z1) (the paper's footnote: worth
    /// 0.18 nats, "not fundamental"). Changes the model's parameters.
    NoSkipXZ2,
    /// Batch-norm statistics of the networks run once per cluster (q(z2|x,y,z1), p(y|z2),
    /// p(z1|y,z2), p(x|y,z1) on K·B rows) weight row (y, b) by K·q(y|z1,x_b), held constant,
    /// instead of counting every row alike (most carry a y that q rules out); the running
    /// averages too. Both the unlabelled ELBO and H_p's sum over y'.
    BnQyWeighted,
}

impl Deviation {
    pub const ALL: [Deviation; 5] = [
        Deviation::KlWarmupGaussianOnly,
        Deviation::HpGradToZ2,
        Deviation::HpTrueLabelZ2,
        Deviation::NoSkipXZ2,
        Deviation::BnQyWeighted,
    ];

    /// The name used on the command line and in config.json.
    pub fn name(self) -> &'static str {
        match self {
            Deviation::KlWarmupGaussianOnly => "kl-warmup-gaussian-only",
            Deviation::HpGradToZ2 => "hp-grad-to-z2",
            Deviation::HpTrueLabelZ2 => "hp-true-label-z2",
            Deviation::NoSkipXZ2 => "no-skip-x-z2",
            Deviation::BnQyWeighted => "bn-qy-weighted",
        }
    }

    pub fn parse(name: &str) -> Option<Deviation> {
        Deviation::ALL.into_iter().find(|d| d.name() == name)
    }

    /// Whether it changes the networks (saved in the model's configuration) rather than the
    /// training objective.
    pub fn is_architectural(self) -> bool {
        self == Deviation::NoSkipXZ2
    }
}

/// The objective's switches, read from a run's deviations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ObjectiveDeviations {
    pub kl_warmup_gaussian_only: bool,
    pub hp_grad_to_z2: bool,
    pub hp_true_label_z2: bool,
    pub bn_qy_weighted: bool,
}

impl ObjectiveDeviations {
    pub fn from_list(list: &[Deviation]) -> Self {
        ObjectiveDeviations {
            kl_warmup_gaussian_only: list.contains(&Deviation::KlWarmupGaussianOnly),
            hp_grad_to_z2: list.contains(&Deviation::HpGradToZ2),
            hp_true_label_z2: list.contains(&Deviation::HpTrueLabelZ2),
            bn_qy_weighted: list.contains(&Deviation::BnQyWeighted),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_on_the_command_line_and_in_json() {
        for d in Deviation::ALL {
            assert_eq!(Deviation::parse(d.name()), Some(d));
            assert_eq!(serde_json::to_value(d).unwrap(), d.name());
        }
        assert_eq!(Deviation::parse("no-such-thing"), None);
    }
}
