//! A tiny scanline rasteriser for the synthetic footage: filled polygons into a uint8 RGB buffer,
//! modulated by a per-pixel light map. No antialiasing: the encoder smooths edges anyway, and
//! per-pixel work stays a multiply and a shift.

/// An RGB frame `(H, W, 3)` plus the camera's light map (fixed point, 256 = 1.0) of the same size.
pub struct Canvas<'a> {
    /// Frame width in pixels.
    pub width: usize,
    /// Frame height in pixels.
    pub height: usize,
    /// `H * W * 3` bytes, rows top to bottom.
    pub rgb: &'a mut [u8],
    /// `H * W` light factors, 256 = unchanged.
    pub light: &'a [u16],
}

/// How a polygon changes the pixels it covers.
#[derive(Clone, Copy, Debug)]
pub enum Paint {
    /// Set to this colour (times the light map).
    Solid([u8; 3]),
    /// Multiply the existing pixel by `factor / 256` (shadows).
    Darken(u16),
}

impl Canvas<'_> {
    /// Fills the polygon `pts` (image pixel coordinates, pixel centres at +0.5) with even-odd rule.
    pub fn fill_polygon(&mut self, pts: &[(f32, f32)], paint: Paint) {
        if pts.len() < 3 {
            return;
        }
        let (mut ymin, mut ymax) = (f32::INFINITY, f32::NEG_INFINITY);
        for &(_, y) in pts {
            ymin = ymin.min(y);
            ymax = ymax.max(y);
        }
        if !(ymin.is_finite() && ymax.is_finite()) {
            return;
        }
        let row0 = (ymin - 0.5).ceil().max(0.0) as usize;
        let row1 = ((ymax - 0.5).floor() as isize).min(self.height as isize - 1);
        if row1 < row0 as isize {
            return;
        }
        let mut xs: Vec<f32> = Vec::with_capacity(8);
        for row in row0..=row1 as usize {
            let yc = row as f32 + 0.5;
            xs.clear();
            let n = pts.len();
            for i in 0..n {
                let (x0, y0) = pts[i];
                let (x1, y1) = pts[(i + 1) % n];
                // Half-open rule so shared vertices count once.
                if (y0 <= yc && y1 > yc) || (y1 <= yc && y0 > yc) {
                    xs.push(x0 + (yc - y0) / (y1 - y0) * (x1 - x0));
                }
            }
            xs.sort_by(f32::total_cmp);
            for pair in xs.chunks_exact(2) {
                let c0 = (pair[0] - 0.5).ceil().max(0.0) as usize;
                let c1 = ((pair[1] - 0.5).floor() as isize).min(self.width as isize - 1);
                if c1 >= c0 as isize {
                    self.span(row, c0, c1 as usize, paint);
                }
            }
        }
    }

    fn span(&mut self, row: usize, c0: usize, c1: usize, paint: Paint) {
        let base = row * self.width;
        let light = &self.light[base + c0..=base + c1];
        let px = &mut self.rgb[(base + c0) * 3..(base + c1 + 1) * 3];
        match paint {
            Paint::Solid(c) => {
                for (p, &l) in px.chunks_exact_mut(3).zip(light) {
                    let l = l as u32;
                    p[0] = ((c[0] as u32 * l) >> 8).min(255) as u8;
                    p[1] = ((c[1] as u32 * l) >> 8).min(255) as u8;
                    p[2] = ((c[2] as u32 * l) >> 8).min(255) as u8;
                }
            }
            Paint::Darken(f) => {
                let f = f as u32;
                for v in px.iter_mut() {
                    *v = ((*v as u32 * f) >> 8) as u8;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_an_axis_aligned_square_exactly() {
        let (w, h) = (8, 6);
        let mut rgb = vec![0u8; w * h * 3];
        let light = vec![256u16; w * h];
        let mut c = Canvas {
            width: w,
            height: h,
            rgb: &mut rgb,
            light: &light,
        };
        // Covers pixel centres x in {2.5, 3.5, 4.5}, y in {1.5, 2.5}.
        c.fill_polygon(
            &[(2.0, 1.0), (5.0, 1.0), (5.0, 3.0), (2.0, 3.0)],
            Paint::Solid([10, 20, 30]),
        );
        for y in 0..h {
            for x in 0..w {
                let inside = (2..5).contains(&x) && (1..3).contains(&y);
                let p = &rgb[(y * w + x) * 3..(y * w + x) * 3 + 3];
                assert_eq!(
                    p,
                    if inside {
                        &[10, 20, 30][..]
                    } else {
                        &[0, 0, 0][..]
                    },
                    "pixel {x},{y}"
                );
            }
        }
    }

    #[test]
    fn light_and_darken_scale_pixels_and_clipping_is_safe() {
        let (w, h) = (4, 4);
        let mut rgb = vec![100u8; w * h * 3];
        let light = vec![128u16; w * h];
        let mut c = Canvas {
            width: w,
            height: h,
            rgb: &mut rgb,
            light: &light,
        };
        c.fill_polygon(
            &[(-10.0, -10.0), (20.0, -10.0), (20.0, 0.9), (-10.0, 0.9)],
            Paint::Solid([200, 200, 200]),
        );
        c.fill_polygon(
            &[(-10.0, 1.0), (20.0, 1.0), (20.0, 2.0), (-10.0, 2.0)],
            Paint::Darken(64),
        );
        assert_eq!(rgb[0], 100); // row 0 centre 0.5 < 0.9: filled with 200 * 0.5
        assert_eq!(&rgb[..3], &[100, 100, 100]);
        assert_eq!(rgb[w * 3], 25); // row 1 darkened to a quarter
        assert_eq!(rgb[2 * w * 3], 100); // row 2 untouched
    }
}
