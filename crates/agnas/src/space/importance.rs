//! Accumulated attention as a typed tensor: named axes, row-major values, and a mask where decision points have
//! fewer candidates than the widest one.
use crate::Error;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// Σ of the attention gates per candidate. The last axis holds the candidates of one decision point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Importances {
    /// Axis names, outermost first (`["cell", "edge", "op"]`).
    pub axes: Vec<String>,
    pub shape: Vec<usize>,
    /// Row-major values.
    pub values: Vec<f64>,
    /// `false` marks a candidate that does not exist at its decision point; absent when all exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<Vec<bool>>,
}

impl Importances {
    /// The values of `t` (any float kind, any device) under `axes`.
    pub fn from_tensor(axes: &[&str], t: &Tensor) -> Result<Self, Error> {
        let shape: Vec<usize> = t.size().iter().map(|&s| s as usize).collect();
        if shape.len() != axes.len() {
            return Err(Error::Importances(format!("a tensor of shape {shape:?} for axes {axes:?}")));
        }
        let flat = t.to_kind(Kind::Double).to_device(Device::Cpu).contiguous().flatten(0, -1);
        let values = Vec::<f64>::try_from(flat).map_err(|e| Error::Importances(e.to_string()))?;
        Ok(Importances { axes: axes.iter().map(|a| a.to_string()).collect(), shape, values, mask: None })
    }

    /// Reads the nested lists of `importances.json` back under `axes`.
    pub fn from_nested(axes: &[&str], nested: &serde_json::Value) -> Result<Self, Error> {
        let (mut shape, mut values) = (Vec::new(), Vec::new());
        unnest(nested, 0, &mut shape, &mut values)?;
        if shape.len() != axes.len() || shape.iter().product::<usize>() != values.len() {
            return Err(Error::Importances(format!("nested lists of shape {shape:?} for axes {axes:?}")));
        }
        Ok(Importances { axes: axes.iter().map(|a| a.to_string()).collect(), shape, values, mask: None })
    }

    /// Marks the candidates that do not exist (`false`), one flag per value.
    pub fn with_mask(mut self, mask: Vec<bool>) -> Self {
        self.mask = Some(mask);
        self
    }

    /// The values as nested lists, outermost axis first (what `importances.json` holds).
    pub fn nested(&self) -> serde_json::Value {
        nest(&self.values, &self.shape)
    }

    /// The mask as nested lists of booleans like [`Importances::nested`], if there is one.
    pub fn nested_mask(&self) -> Option<serde_json::Value> {
        let mask = self.mask.as_ref()?;
        let ones: Vec<f64> = mask.iter().map(|&m| f64::from(u8::from(m))).collect();
        Some(map_leaves(nest(&ones, &self.shape), &|v| serde_json::Value::Bool(v.as_f64() == Some(1.0))))
    }

    /// The values as (outer × decision points × candidates) for spaces with three axes.
    pub fn to_vec3(&self) -> Result<Vec<Vec<Vec<f64>>>, Error> {
        let [_, b, c] = self.shape[..] else {
            return Err(Error::Importances(format!("expected three axes, found {:?}", self.axes)));
        };
        Ok(self
            .values
            .chunks((b * c).max(1))
            .map(|cell| cell.chunks(c.max(1)).map(<[f64]>::to_vec).collect())
            .collect())
    }

    /// An error naming the first value (of an existing candidate) that is not finite.
    pub fn ensure_finite(&self) -> Result<(), Error> {
        if self.mask.as_ref().is_some_and(|m| m.len() != self.values.len()) {
            return Err(Error::Importances("the mask and the values differ in length".into()));
        }
        let present = |i: usize| self.mask.as_ref().is_none_or(|m| m[i]);
        match self.values.iter().enumerate().find(|&(i, v)| present(i) && !v.is_finite()) {
            Some((i, v)) => Err(Error::NonFiniteAttention { value: *v, at: self.index_of(i) }),
            None => Ok(()),
        }
    }

    /// `axis=index` pairs of a flat position.
    fn index_of(&self, mut flat: usize) -> String {
        let mut parts = Vec::with_capacity(self.shape.len());
        for (axis, &n) in self.axes.iter().zip(&self.shape).rev() {
            parts.push(format!("{axis} {}", flat % n.max(1)));
            flat /= n.max(1);
        }
        parts.reverse();
        parts.join(", ")
    }
}

/// `v` with `f` applied to every scalar of its nested lists.
fn map_leaves(v: serde_json::Value, f: &dyn Fn(&serde_json::Value) -> serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.into_iter().map(|i| map_leaves(i, f)).collect())
        }
        leaf => f(&leaf),
    }
}

/// Nested JSON lists of row-major `values` of `shape`.
pub(crate) fn nest(values: &[f64], shape: &[usize]) -> serde_json::Value {
    match shape {
        [] => serde_json::json!(values[0]),
        [_] => serde_json::json!(values),
        [n, rest @ ..] => {
            let chunk = values.len() / (*n).max(1);
            serde_json::Value::Array(values.chunks(chunk.max(1)).map(|c| nest(c, rest)).collect())
        }
    }
}

fn unnest(v: &serde_json::Value, depth: usize, shape: &mut Vec<usize>, flat: &mut Vec<f64>) -> Result<(), Error> {
    match v {
        serde_json::Value::Array(items) => {
            if shape.len() == depth {
                shape.push(items.len());
            }
            if shape[depth] != items.len() {
                return Err(Error::Importances(format!("rows of unequal length at depth {depth}")));
            }
            items.iter().try_for_each(|item| unnest(item, depth + 1, shape, flat))
        }
        serde_json::Value::Number(n) if shape.len() == depth => {
            flat.push(n.as_f64().unwrap_or(f64::NAN));
            Ok(())
        }
        other => Err(Error::Importances(format!("unexpected {other} at depth {depth}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_round_trip_and_finite_check_name_the_position() {
        let t = Tensor::arange(12, (Kind::Double, Device::Cpu)).reshape([2, 3, 2]);
        let imp = Importances::from_tensor(&["cell", "edge", "op"], &t).unwrap();
        assert_eq!(
            imp.nested(),
            serde_json::json!([[[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]], [[6.0, 7.0], [8.0, 9.0], [10.0, 11.0]]])
        );
        let back = Importances::from_nested(&["cell", "edge", "op"], &imp.nested()).unwrap();
        assert_eq!(back, imp);
        assert_eq!(imp.to_vec3().unwrap()[1][2], vec![10.0, 11.0]);
        let mut bad = imp.clone();
        bad.values[9] = f64::NAN;
        let err = bad.ensure_finite().unwrap_err().to_string();
        assert!(err.contains("cell 1, edge 1, op 1"), "{err}");
        // A masked-out candidate may hold anything.
        assert!(bad.with_mask((0..12).map(|i| i != 9).collect()).ensure_finite().is_ok());
        assert!(Importances::from_nested(&["a", "b"], &serde_json::json!([[1.0], [2.0, 3.0]])).is_err());
        assert!(Importances::from_nested(&["a", "b", "c"], &serde_json::json!([[[1.0]], [[2.0, 3.0]]])).is_err());
        assert!(imp.clone().with_mask(vec![true; 3]).ensure_finite().is_err(), "a mask of the wrong length");
        assert!(Importances::from_tensor(&["a"], &t).is_err());
    }
}
