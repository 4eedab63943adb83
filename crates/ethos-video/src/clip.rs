/// A clip of uint8 RGB frames, row-major `(T, H, W, 3)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clip {
    /// Number of frames `T`.
    pub frames: usize,
    /// Frame height `H` in pixels.
    pub height: usize,
    /// Frame width `W` in pixels.
    pub width: usize,
    /// `T * H * W * 3` bytes, frame after frame, rows top to bottom, RGB interleaved.
    pub data: Vec<u8>,
}

impl Clip {
    /// An all-black clip of the given shape.
    pub fn zeros(frames: usize, height: usize, width: usize) -> Self {
        Self {
            frames,
            height,
            width,
            data: vec![0; frames * height * width * 3],
        }
    }

    /// Bytes of one frame (`H * W * 3`).
    pub fn frame_len(&self) -> usize {
        self.height * self.width * 3
    }

    /// Frame `t` as `(H, W, 3)` bytes.
    pub fn frame(&self, t: usize) -> &[u8] {
        let n = self.frame_len();
        &self.data[t * n..(t + 1) * n]
    }

    /// Frame `t` as mutable `(H, W, 3)` bytes.
    pub fn frame_mut(&mut self, t: usize) -> &mut [u8] {
        let n = self.frame_len();
        &mut self.data[t * n..(t + 1) * n]
    }

    /// The shape `[T, H, W, 3]`.
    pub fn shape(&self) -> [usize; 4] {
        [self.frames, self.height, self.width, 3]
    }
}
