//! Which DHT implementation each virtual node plays, and the presets that
//! set the mix.
//!
//! Owns: [`NodeModel`] (one per node, derived from (seed, index) like every
//! other trait), the mix that chooses it, libtorrent 2.0's limits as the
//! libtorrent model applies them, and the [`Preset`]s (`fast`, `mainline`).
//! Must not: answer anything; [`super::answer`] reads the model and acts.
//!
//! docs/swarm.md gives every number of the `mainline` preset with its source.

use super::derive::{self, unit};

/// How one virtual node behaves on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeModel {
    /// The idealised node of the wire benchmarks: a scrape gets `values` and
    /// the bloom filters together, no budgets, no blocking. No real node does this.
    Fast,
    /// libtorrent 2.0 with its default settings.
    Libtorrent,
    /// A node without BEP 51 (Transmission, rakshasa libtorrent): error 204 to
    /// `sample_infohashes`, and no BEP 33 either, so a scrape gets `values`.
    NoBep51,
    /// Behind a NAT: listed in other nodes' `nodes`, never answers anyone.
    Nat,
}

/// Fractions of nodes per model; what is left over plays [`NodeModel::Fast`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ModelMix {
    pub libtorrent: f64,
    pub no_bep51: f64,
    pub nat: f64,
}

impl ModelMix {
    /// Every node plays `Fast`: the swarm as it was before the models.
    pub const FAST: ModelMix = ModelMix {
        libtorrent: 0.0,
        no_bep51: 0.0,
        nat: 0.0,
    };

    pub fn model(&self, seed: u64, index: u32) -> NodeModel {
        let u = unit(seed, index.into(), derive::SALT_MODEL);
        match derive::share_index(u, &[self.nat, self.no_bep51, self.libtorrent]) {
            0 => NodeModel::Nat,
            1 => NodeModel::NoBep51,
            2 => NodeModel::Libtorrent,
            _ => NodeModel::Fast,
        }
    }
}

/// libtorrent 2.0's defaults as the libtorrent model applies them, each named
/// after its `settings_pack` entry.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LibtorrentLimits {
    /// `dht_upload_rate_limit`: reply bytes per second, per node (0: no budget).
    pub upload_rate_limit: u32,
    /// `dht_block_ratelimit`: messages per second from one IP; the dos blocker
    /// blocks an IP that sends ten seconds' worth inside its window (0: off).
    pub block_ratelimit: u32,
    /// `dht_block_timeout`: how long the blocker ignores that IP, in seconds.
    pub block_timeout_s: u32,
    /// `dht_max_peers_reply`: most `values` in one `get_peers` reply.
    pub max_peers_reply: usize,
    /// `dht_sample_infohashes_interval`, in real seconds before [`TimeScale`].
    pub sample_interval_s: u32,
    /// `dht_max_infohashes_sample_count`.
    pub max_samples: usize,
}

impl Default for LibtorrentLimits {
    fn default() -> Self {
        Self {
            upload_rate_limit: 8_000,
            block_ratelimit: 5,
            block_timeout_s: 300,
            max_peers_reply: 100,
            sample_interval_s: 21_600,
            max_samples: 20,
        }
    }
}

/// Divides the DHT's slow clocks (the sample interval, churn) so a run that
/// covers several sampling intervals fits in minutes. Rate limits, block
/// timeouts, token lifetimes and network timeouts stay real.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimeScale(pub f64);

impl TimeScale {
    /// The `mainline` preset's factor: 21,600 s of sample interval become 60 s.
    pub const MAINLINE: TimeScale = TimeScale(360.0);

    /// `real_s` seconds of DHT time, in milliseconds of run time (at least 1).
    pub fn scaled_ms(self, real_s: f64) -> u64 {
        ((real_s * 1000.0 / self.0.max(1e-9)).round() as u64).max(1)
    }
}

/// A named configuration of the whole swarm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// Idealised nodes and instant peers, for wire benchmarks (`trawl-bench
    /// crawl`): it measures how fast a crawler moves bytes, not what it would find.
    Fast,
    /// The real DHT as published measurements describe it (docs/swarm.md).
    Mainline,
}

impl Preset {
    pub fn name(self) -> &'static str {
        match self {
            Preset::Fast => "fast",
            Preset::Mainline => "mainline",
        }
    }

    pub fn parse(s: &str) -> Option<Preset> {
        match s {
            "fast" => Some(Preset::Fast),
            "mainline" => Some(Preset::Mainline),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_picks_models_in_proportion() {
        let mix = ModelMix {
            libtorrent: 0.5,
            no_bep51: 0.2,
            nat: 0.2,
        };
        let mut counts = [0u32; 4];
        for i in 0..20_000 {
            counts[mix.model(3, i) as usize] += 1;
            assert_eq!(mix.model(3, i), mix.model(3, i), "deterministic");
        }
        let share = |m: NodeModel| f64::from(counts[m as usize]) / 20_000.0;
        assert!((share(NodeModel::Libtorrent) - 0.5).abs() < 0.02);
        assert!((share(NodeModel::NoBep51) - 0.2).abs() < 0.02);
        assert!((share(NodeModel::Nat) - 0.2).abs() < 0.02);
        assert!((share(NodeModel::Fast) - 0.1).abs() < 0.02);
        assert!((0..1000).all(|i| ModelMix::FAST.model(3, i) == NodeModel::Fast));
    }

    #[test]
    fn time_scale_shrinks_the_interval() {
        assert_eq!(TimeScale::MAINLINE.scaled_ms(21_600.0), 60_000);
        assert_eq!(TimeScale(1.0).scaled_ms(300.0), 300_000);
        assert_eq!(Preset::parse("mainline"), Some(Preset::Mainline));
        assert_eq!(Preset::parse(Preset::Fast.name()), Some(Preset::Fast));
        assert_eq!(Preset::parse("slow"), None);
    }
}
