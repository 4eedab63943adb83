//! What the trainer exchanges between data-parallel ranks, on an [`ethos_dist::ProcessGroup`].
//!
//! One process per device; every rank holds the whole model and takes its share of each global
//! batch ([`ethos_data::shard::Shard`]). Per micro-batch the ranks sum the loss numerator and
//! denominator (so every rank back-propagates `Σ_r loss_r / Σ_r norm_r`, the single-process batch
//! loss, whatever the shares' sizes) and gather the clip probabilities for the train metrics; per
//! optimiser step they sum the gradients, so each rank steps with the single-process gradient
//! (summed in another order: float32 noise). Validation gathers every rank's per-sample outputs,
//! so metrics are computed from the same rows as in one process.
//!
//! Collectives must be called in the same order on every rank; every method here is one or a
//! fixed number of collectives, called by every rank, whatever its share (an empty share takes
//! part with zeros). Time spent inside collectives (including waiting for slower ranks) is
//! accumulated for the epoch log.

use std::cell::Cell;
use std::time::Instant;

use ethos_dist::ProcessGroup;
use tch::{Device, Kind, Tensor, nn};

use crate::optim::AdamW;
use crate::trainer::TrainError;

/// A process group seen from the trainer.
pub struct DataParallel {
    pg: ProcessGroup,
    /// The device this rank trains on.
    device: Device,
    /// Seconds spent in collectives since the last [`DataParallel::take_comm_seconds`].
    comm_seconds: Cell<f64>,
}

impl std::fmt::Debug for DataParallel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataParallel")
            .field("pg", &self.pg)
            .finish()
    }
}

impl DataParallel {
    /// Wraps a joined process group of a rank that trains on `device`.
    pub fn new(pg: ProcessGroup, device: Device) -> Self {
        DataParallel {
            pg,
            device,
            comm_seconds: Cell::new(0.0),
        }
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.pg.rank()
    }

    /// Number of ranks.
    pub fn world_size(&self) -> usize {
        self.pg.world_size()
    }

    /// True on rank 0, the only rank that writes files.
    pub fn is_main(&self) -> bool {
        self.pg.rank() == 0
    }

    /// The process group (for collectives the trainer does not wrap).
    pub fn group(&self) -> &ProcessGroup {
        &self.pg
    }

    /// Leaves the group cleanly (every rank, at the end of a run).
    pub fn shutdown(self) -> Result<(), TrainError> {
        Ok(self.pg.shutdown()?)
    }

    /// Seconds spent in collectives since the last call (waiting for other ranks included).
    pub fn take_comm_seconds(&self) -> f64 {
        self.comm_seconds.replace(0.0)
    }

    fn timed<T>(&self, f: impl FnOnce() -> T) -> T {
        let t0 = Instant::now();
        let out = f();
        self.comm_seconds
            .set(self.comm_seconds.get() + t0.elapsed().as_secs_f64());
        out
    }

    /// Copies every variable of `vs` (trainable or not) from rank 0 to the other ranks: initial
    /// weights, and the buffers (BatchNorm statistics) before an evaluation, so that every rank
    /// evaluates rank 0's model, as PyTorch's DDP does by broadcasting buffers.
    pub fn broadcast_variables(
        &self,
        vs: &nn::VarStore,
        trainable: bool,
    ) -> Result<(), TrainError> {
        let mut vars: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| trainable || !t.requires_grad())
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let mut tensors: Vec<Tensor> = vars.into_iter().map(|(_, t)| t).collect();
        if tensors.is_empty() {
            return Ok(());
        }
        tch::no_grad(|| self.timed(|| self.pg.broadcast(&mut tensors, 0)))?;
        Ok(())
    }

    /// Rank 0's bytes on every rank: rank 0 passes `Some`, the others `None` (a decision only
    /// rank 0 may take, such as where a run starts).
    pub fn broadcast_bytes(&self, bytes: Option<Vec<u8>>) -> Result<Vec<u8>, TrainError> {
        let device = self.device();
        let len = bytes.as_ref().map_or(0, Vec::len) as i64;
        let mut t = [Tensor::from_slice(&[len]).to_device(device)];
        self.timed(|| self.pg.broadcast(&mut t, 0))?;
        let len = t[0].int64_value(&[0]);
        if len == 0 {
            return Ok(Vec::new());
        }
        let mut t = [match bytes {
            Some(b) if self.is_main() => Tensor::from_slice(&b).to_device(device),
            _ => Tensor::zeros([len], (Kind::Uint8, device)),
        }];
        self.timed(|| self.pg.broadcast(&mut t, 0))?;
        Vec::<u8>::try_from(t[0].to_device(Device::Cpu))
            .map_err(|e| TrainError::Internal(format!("reading broadcast bytes: {e}")))
    }

    /// Sums float64 values over the ranks; every rank gets the same sums.
    pub fn sum_f64(&self, values: &[f64]) -> Result<Vec<f64>, TrainError> {
        let mut t = [Tensor::from_slice(values).to_device(self.device())];
        self.timed(|| self.pg.all_reduce_sum(&mut t))?;
        Vec::<f64>::try_from(t[0].to_device(Device::Cpu))
            .map_err(|e| TrainError::Internal(format!("reading a reduced value: {e}")))
    }

    /// True on every rank when `flag` is true on any rank (stop requests must be agreed on).
    pub fn any(&self, flag: bool) -> Result<bool, TrainError> {
        Ok(self.sum_f64(&[f64::from(u8::from(flag))])?[0] > 0.0)
    }

    /// Gathers float64 values from every rank, concatenated in rank order, with each rank's
    /// count. Ranks may contribute different numbers of values, none included.
    pub fn gather_f64(&self, values: &[f64]) -> Result<(Vec<f64>, Vec<usize>), TrainError> {
        let t = Tensor::from_slice(values).to_device(self.device());
        let parts = self.timed(|| self.pg.all_gather(&t))?;
        let mut all = Vec::new();
        let mut counts = Vec::with_capacity(parts.len());
        for p in parts {
            let v = Vec::<f64>::try_from(p.to_device(Device::Cpu).to_kind(Kind::Double))
                .map_err(|e| TrainError::Internal(format!("reading gathered values: {e}")))?;
            counts.push(v.len());
            all.extend(v);
        }
        Ok((all, counts))
    }

    /// Gathers rows of `width` values from every rank: the rows of all ranks in rank order.
    pub fn gather_rows(
        &self,
        rows: &[Vec<f64>],
        width: usize,
    ) -> Result<Vec<Vec<f64>>, TrainError> {
        if let Some(r) = rows.iter().find(|r| r.len() != width) {
            return Err(TrainError::Internal(format!(
                "gathering rows of {width} values, one has {}",
                r.len()
            )));
        }
        let flat: Vec<f64> = rows.iter().flatten().copied().collect();
        let (all, _) = self.gather_f64(&flat)?;
        Ok(all.chunks(width.max(1)).map(<[f64]>::to_vec).collect())
    }

    /// Gathers a tensor `(n_r, ...)` from every rank into one `(Σ n_r, ...)` tensor on its
    /// device, in rank order, and returns it with this rank's first row in it.
    pub fn gather_tensor(&self, t: &Tensor) -> Result<(Tensor, usize), TrainError> {
        let parts = self.timed(|| self.pg.all_gather(t))?;
        let offset: i64 = parts[..self.rank()].iter().map(|p| p.size()[0]).sum();
        let parts: Vec<Tensor> = parts.iter().map(|p| p.to_device(t.device())).collect();
        Ok((Tensor::cat(&parts, 0), offset as usize))
    }

    /// Sums the gradients of the optimiser's parameters over the ranks, in place. A parameter
    /// whose gradient is undefined on this rank (no sample in this step's run) takes part with
    /// zeros and receives the sum when another rank had one; one without a gradient on every rank
    /// stays without (the optimiser skips it, as in one process).
    pub fn sum_gradients(&self, optim: &AdamW) -> Result<(), TrainError> {
        let params: Vec<Tensor> = optim.parameters().map(Tensor::shallow_clone).collect();
        if params.is_empty() {
            return Ok(());
        }
        let mut grads = Vec::with_capacity(params.len() + 1);
        let mut defined = Vec::with_capacity(params.len());
        for p in &params {
            let g = p.grad();
            if g.defined() {
                grads.push(g);
                defined.push(1f32);
            } else {
                grads.push(tch::no_grad(|| p.zeros_like()));
                defined.push(0f32);
            }
        }
        grads.push(Tensor::from_slice(&defined).to_device(params[0].device()));
        self.timed(|| self.pg.all_reduce_sum(&mut grads))?;
        let anywhere = Vec::<f32>::try_from(grads[params.len()].to_device(Device::Cpu))
            .map_err(|e| TrainError::Internal(format!("reading gradient flags: {e}")))?;
        for (i, p) in params.iter().enumerate() {
            if defined[i] == 0.0 && anywhere[i] > 0.0 {
                // tch cannot assign a gradient: a backward through `p · 0` creates a zero one.
                (p * 0.0).sum(Kind::Float).backward();
                tch::no_grad(|| p.grad().copy_(&grads[i]));
            }
        }
        Ok(())
    }

    /// Where small exchanged values live: the CPU for Gloo, the rank's GPU for NCCL.
    fn device(&self) -> Device {
        match self.pg.backend() {
            ethos_dist::Backend::Gloo => Device::Cpu,
            ethos_dist::Backend::Nccl => self.device,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use ethos_dist::{Backend, Rendezvous};

    fn world_of_one() -> DataParallel {
        let pg = ProcessGroup::new(
            Backend::Gloo,
            &Rendezvous::single(),
            Duration::from_secs(30),
        )
        .unwrap();
        DataParallel::new(pg, Device::Cpu)
    }

    #[test]
    fn a_world_of_one_passes_values_through() {
        let dp = world_of_one();
        assert!(dp.is_main());
        assert_eq!(dp.sum_f64(&[1.5, -2.0]).unwrap(), vec![1.5, -2.0]);
        assert!(dp.any(true).unwrap());
        assert!(!dp.any(false).unwrap());
        let rows = vec![vec![0.25, 0.75, 1.0], vec![0.5, 0.5, 0.0]];
        assert_eq!(dp.gather_rows(&rows, 3).unwrap(), rows);
        assert!(dp.gather_rows(&rows, 2).is_err());
        let (all, counts) = dp.gather_f64(&[]).unwrap();
        assert!(all.is_empty());
        assert_eq!(counts, vec![0]);
        assert_eq!(dp.broadcast_bytes(Some(b"run".to_vec())).unwrap(), b"run");
        assert!(dp.broadcast_bytes(Some(Vec::new())).unwrap().is_empty());
        let t = Tensor::from_slice(&[1f32, 2., 3., 4.]).view([2, 2]);
        let (g, first) = dp.gather_tensor(&t).unwrap();
        assert_eq!(first, 0);
        assert_eq!(g, t);
        assert!(dp.take_comm_seconds() >= 0.0);
        assert_eq!(dp.take_comm_seconds(), 0.0);
        dp.shutdown().unwrap();
    }

    #[test]
    fn gradient_sums_keep_undefined_gradients_undefined() {
        let dp = world_of_one();
        let vs = nn::VarStore::new(Device::Cpu);
        let used = vs.root().var("used", &[2], nn::Init::Const(1.0));
        let _unused = vs.root().var("unused", &[3], nn::Init::Const(1.0));
        let cfg = crate::optim::OptimConfig::default();
        let optim = AdamW::from_var_store(&vs, &cfg).unwrap();
        (&used * 3.0).sum(Kind::Float).backward();
        dp.sum_gradients(&optim).unwrap();
        let grads: Vec<(String, Tensor)> = optim
            .weight_decays()
            .into_iter()
            .map(|(n, _)| n)
            .zip(optim.parameters().map(Tensor::grad))
            .collect();
        for (name, g) in grads {
            match name.as_str() {
                "used" => assert_eq!(g, Tensor::from_slice(&[3f32, 3.])),
                _ => assert!(!g.defined(), "{name}"),
            }
        }
        dp.broadcast_variables(&vs, true).unwrap();
        dp.shutdown().unwrap();
    }
}
