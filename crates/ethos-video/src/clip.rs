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

    /// The clip as a borrowed [`ClipView`].
    pub fn view(&self) -> ClipView<'_> {
        ClipView {
            frames: self.frames,
            height: self.height,
            width: self.width,
            data: &self.data,
        }
    }
}

/// Borrowed uint8 RGB frames, row-major `(T, H, W, 3)`: a [`Clip`], or frames read in place
/// from somewhere else (a memory-mapped cache entry), so readers need not copy them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClipView<'a> {
    /// Number of frames `T`.
    pub frames: usize,
    /// Frame height `H` in pixels.
    pub height: usize,
    /// Frame width `W` in pixels.
    pub width: usize,
    /// `T * H * W * 3` bytes, laid out as in [`Clip::data`].
    pub data: &'a [u8],
}

impl<'a> ClipView<'a> {
    /// Bytes of one frame (`H * W * 3`).
    pub fn frame_len(&self) -> usize {
        self.height * self.width * 3
    }

    /// Frame `t` as `(H, W, 3)` bytes.
    pub fn frame(&self, t: usize) -> &'a [u8] {
        let n = self.frame_len();
        &self.data[t * n..(t + 1) * n]
    }

    /// The shape `[T, H, W, 3]`.
    pub fn shape(&self) -> [usize; 4] {
        [self.frames, self.height, self.width, 3]
    }

    /// An owned copy.
    pub fn to_clip(&self) -> Clip {
        Clip {
            frames: self.frames,
            height: self.height,
            width: self.width,
            data: self.data.to_vec(),
        }
    }
}

impl<'a> From<&'a Clip> for ClipView<'a> {
    fn from(clip: &'a Clip) -> Self {
        clip.view()
    }
}
