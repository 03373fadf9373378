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
    /// The authors' public code (SDGM, ADGM): each labelled (x_l, y_l) also contributes its ELBO
    /// with y observed, log p(x_l, y_l) ≥ E[log p(x|y_l,z1) + log p(z1|y_l,z2) + log p(y_l|z2) +
    /// log p(z2) − log q(z2|x,y_l,z1) − log q(z1|x)], one z1 and one z2 per example, warm-up
    /// as for F; its labelled-batch mean is added with the weight of the unlabelled-batch mean
    /// and its gradient reaches every parameter.
    LabelledElbo,
    /// While T < 1, the term log p(y′|z2_y′) of the unlabelled ELBO weights its branches by
    /// (1 − T)/K + T·q(y′|z1,x) instead of q(y′|z1,x): every branch pays z2 for carrying the y′
    /// it is given while the KL is cheap. At T = 1 it is the paper's F again (also its gradient:
    /// only the uniform share is a constant). `--routing-floor ε` keeps a share max(1 − T, ε).
    RoutingWarmup,
    /// H_p's gradient reaches every network that made its inputs: q(z1|x) and q(z2|x,y,z1) as
    /// well as θ_y and φ_y (the authors' single gradient of the whole objective); H_q keeps
    /// appendix B's rule.
    HpGradAll,
    /// The extra share of the reweighted term log p(y′|z2_y′) (what `--log-py-weight`,
    /// `--routing-floor` or routing-warmup add to or take from the paper's F) weights its
    /// branches by q(y′|z1,x) held constant: it trains z2 and p(y|z2), and q(y|z1,x) keeps the
    /// paper's gradient (q(z1|x) loses the part that reached it through q's weights). Without
    /// it the extra (W − 1)·Σ q log p(y′|z2_y′) also pays q for putting its mass where p(y|z2)
    /// already agrees. Needs one of those three to act.
    LogPyQyHeld,
}

impl Deviation {
    pub const ALL: [Deviation; 9] = [
        Deviation::KlWarmupGaussianOnly,
        Deviation::HpGradToZ2,
        Deviation::HpTrueLabelZ2,
        Deviation::NoSkipXZ2,
        Deviation::BnQyWeighted,
        Deviation::LabelledElbo,
        Deviation::RoutingWarmup,
        Deviation::HpGradAll,
        Deviation::LogPyQyHeld,
    ];

    /// The name used on the command line and in config.json.
    pub fn name(self) -> &'static str {
        match self {
            Deviation::KlWarmupGaussianOnly => "kl-warmup-gaussian-only",
            Deviation::HpGradToZ2 => "hp-grad-to-z2",
            Deviation::HpTrueLabelZ2 => "hp-true-label-z2",
            Deviation::NoSkipXZ2 => "no-skip-x-z2",
            Deviation::BnQyWeighted => "bn-qy-weighted",
            Deviation::LabelledElbo => "labelled-elbo",
            Deviation::RoutingWarmup => "routing-warmup",
            Deviation::HpGradAll => "hp-grad-all",
            Deviation::LogPyQyHeld => "log-py-qy-held",
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
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ObjectiveDeviations {
    pub kl_warmup_gaussian_only: bool,
    pub hp_grad_to_z2: bool,
    pub hp_true_label_z2: bool,
    pub bn_qy_weighted: bool,
    pub labelled_elbo: bool,
    pub hp_grad_all: bool,
    pub routing_warmup: bool,
    /// log-py-qy-held: the reweighting's extra share of log p(y′|z2_y′) holds q's weights constant.
    pub log_py_qy_held: bool,
    /// ε of `--routing-floor`: the uniform share of log p(y′|z2_y′)'s branch weights never falls
    /// below it (not a bound on log p(x) while ε > 0).
    pub routing_floor: Option<f64>,
    /// λ of `--free-bits-y`: the categorical KL of the unlabelled batch enters the loss as
    /// max(KL_y, λ) (free bits, as GMVAE), so nothing pulls it below λ nats.
    pub free_bits_y: Option<f64>,
    /// λ of `--marginal-entropy-y`: λ·H[q̄(y)], the entropy of the unlabelled batch's mean
    /// q(y|z1,x), is added to F, paying the model for spreading the examples over the clusters
    /// (the marginal-entropy term of IMSAT-style clustering). Not a bound on log p(x).
    pub marginal_entropy_y: Option<f64>,
    /// W of `--log-py-weight`: the unlabelled ELBO's Σ_y q(y|z1,x) log p(y|z2_y) (as reweighted
    /// by routing, if on) counts W times (1: the paper; not a bound on log p(x) otherwise).
    pub log_py_weight: Option<f64>,
}

impl ObjectiveDeviations {
    pub fn from_list(list: &[Deviation]) -> Self {
        ObjectiveDeviations {
            kl_warmup_gaussian_only: list.contains(&Deviation::KlWarmupGaussianOnly),
            hp_grad_to_z2: list.contains(&Deviation::HpGradToZ2),
            hp_true_label_z2: list.contains(&Deviation::HpTrueLabelZ2),
            bn_qy_weighted: list.contains(&Deviation::BnQyWeighted),
            labelled_elbo: list.contains(&Deviation::LabelledElbo),
            hp_grad_all: list.contains(&Deviation::HpGradAll),
            routing_warmup: list.contains(&Deviation::RoutingWarmup),
            log_py_qy_held: list.contains(&Deviation::LogPyQyHeld),
            routing_floor: None,
            free_bits_y: None,
            marginal_entropy_y: None,
            log_py_weight: None,
        }
    }

    /// The uniform share u of the branch weights u/K + (1 − u)·q(y′|z1,x) of log p(y′|z2_y′) at
    /// temperature T, where a routing deviation is on.
    pub fn routing_share(&self, temperature: f64) -> Option<f64> {
        let warm = 1.0 - temperature.clamp(0.0, 1.0);
        match (self.routing_warmup, self.routing_floor) {
            (_, Some(eps)) => Some(warm.max(eps)),
            (true, None) => Some(warm),
            (false, None) => None,
        }
    }

    /// Whether the ELBO must hand out the branch sums of log p(y|z2_y).
    pub fn reweights_log_py(&self) -> bool {
        self.routing_warmup || self.routing_floor.is_some() || self.log_py_weight.is_some()
    }

    /// Whether the ELBO must hand out its categorical part on its own. (--marginal-entropy-y needs
    /// only q(y|z1,x) and log q(y|z1,x), which the ELBO's terms always carry.)
    pub fn needs_categorical_part(&self) -> bool {
        self.kl_warmup_gaussian_only || self.free_bits_y.is_some()
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

    #[test]
    fn routing_share_follows_the_warmup_and_the_floor() {
        let none = ObjectiveDeviations::default();
        assert_eq!(none.routing_share(0.3), None);
        let warm = ObjectiveDeviations { routing_warmup: true, ..none };
        assert_eq!(warm.routing_share(0.25), Some(0.75));
        assert_eq!(warm.routing_share(1.0), Some(0.0));
        let floor = ObjectiveDeviations { routing_floor: Some(0.1), ..none };
        assert_eq!(floor.routing_share(0.5), Some(0.5));
        assert_eq!(floor.routing_share(1.0), Some(0.1));
        assert_eq!(floor.routing_share(0.95), Some(0.1));
    }
}
