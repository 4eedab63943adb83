//! Partial freezing of a model's variables: frozen variables stop tracking gradients and leave the
//! var store's trainable list, so an optimiser built afterwards (`nn::OptimizerConfig::build`) never
//! sees them; they stay in the named variables, so checkpoints still save and load them.

use tch::{Tensor, nn};

/// Counts of trainable and frozen parameters (scalar elements) and variables (tensors).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ParamCounts {
    /// Scalar parameters that receive gradients.
    pub trainable_params: i64,
    /// Scalar parameters that are frozen (buffers such as BatchNorm running statistics excluded).
    pub frozen_params: i64,
    /// Variables (tensors) that receive gradients.
    pub trainable_tensors: usize,
    /// Frozen variables (tensors).
    pub frozen_tensors: usize,
}

/// Freezes every variable whose name starts with one of `prefixes`: `requires_grad` is cleared and the
/// variable is removed from the var store's trainable list. Call it before building the optimiser.
/// Returns the names frozen by this call, sorted.
pub fn freeze_prefixes(vs: &nn::VarStore, prefixes: &[String]) -> Vec<String> {
    let mut vars = vs
        .variables_
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut frozen: Vec<(String, usize)> = vars
        .named_variables
        .iter()
        .filter(|(name, _)| prefixes.iter().any(|p| name.starts_with(p.as_str())))
        .map(|(name, t)| (name.clone(), t.data_ptr() as usize))
        .collect();
    frozen.sort();
    for (name, _) in &frozen {
        if let Some(t) = vars.named_variables.get(name) {
            let _ = t.set_requires_grad(false);
        }
    }
    // Trainable entries are shallow clones of the named ones: they share the storage pointer.
    let frozen_ptrs: std::collections::HashSet<usize> = frozen
        .iter()
        .map(|(_, ptr)| *ptr)
        .filter(|&ptr| ptr != 0)
        .collect();
    vars.trainable_variables
        .retain(|v| !frozen_ptrs.contains(&(v.tensor.data_ptr() as usize)));
    frozen.into_iter().map(|(name, _)| name).collect()
}

/// The variables that receive gradients, by name (sorted): what an optimiser should update.
pub fn trainable_variables(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let vars = vs
        .variables_
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let trainable: std::collections::HashSet<usize> = vars
        .trainable_variables
        .iter()
        .map(|v| v.tensor.data_ptr() as usize)
        .collect();
    let mut out: Vec<(String, Tensor)> = vars
        .named_variables
        .iter()
        .filter(|(_, t)| t.requires_grad() && trainable.contains(&(t.data_ptr() as usize)))
        .map(|(name, t)| (name.clone(), t.shallow_clone()))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Trainable and frozen parameter counts of a var store. Buffers created as non-trainable
/// (`running_mean`, `running_var`) count as neither.
pub fn param_counts(vs: &nn::VarStore) -> ParamCounts {
    let vars = vs
        .variables_
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let trainable: std::collections::HashSet<usize> = vars
        .trainable_variables
        .iter()
        .map(|v| v.tensor.data_ptr() as usize)
        .collect();
    let mut counts = ParamCounts::default();
    for (name, t) in vars.named_variables.iter() {
        let numel = t.numel() as i64;
        if trainable.contains(&(t.data_ptr() as usize)) && t.requires_grad() {
            counts.trainable_params += numel;
            counts.trainable_tensors += 1;
        } else if !is_buffer(name) {
            counts.frozen_params += numel;
            counts.frozen_tensors += 1;
        }
    }
    counts
}

fn is_buffer(name: &str) -> bool {
    name.ends_with(".running_mean")
        || name.ends_with(".running_var")
        || name.ends_with(".num_batches_tracked")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freezing_removes_variables_from_the_trainable_list() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let root = vs.root();
        let _a = nn::linear(&root / "a", 3, 4, Default::default());
        let _b = nn::linear(&root / "b", 4, 2, Default::default());
        let before = param_counts(&vs);
        assert_eq!(before.trainable_params, 3 * 4 + 4 + 4 * 2 + 2);
        assert_eq!(before.frozen_params, 0);
        let frozen = freeze_prefixes(&vs, &["a.".to_string()]);
        assert_eq!(frozen, vec!["a.bias".to_string(), "a.weight".to_string()]);
        let after = param_counts(&vs);
        assert_eq!(after.trainable_params, 4 * 2 + 2);
        assert_eq!(after.frozen_params, 3 * 4 + 4);
        assert_eq!((after.trainable_tensors, after.frozen_tensors), (2, 2));
        let names: Vec<String> = trainable_variables(&vs)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, vec!["b.bias".to_string(), "b.weight".to_string()]);
        assert_eq!(vs.trainable_variables().len(), 2);
    }
}
