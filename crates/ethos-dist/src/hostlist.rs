//! SLURM host lists (`node[01-03,07],gpu5`) expanded the way `scontrol show hostnames` prints them:
//! ranges keep the zero padding of their lower bound, several bracket groups in one name multiply
//! out left to right, and hosts keep their order.

/// Why a host list cannot be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostlistError(pub String);

impl std::fmt::Display for HostlistError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// More hosts than any cluster has: a guard against `node[0-999999999]` typos.
const MAX_HOSTS: usize = 1 << 20;

/// Expands a SLURM host list into host names, in order.
pub fn expand_hostlist(list: &str) -> Result<Vec<String>, HostlistError> {
    let mut hosts = Vec::new();
    for item in split_top_level(list)? {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        for host in expand_item(item)? {
            if hosts.len() >= MAX_HOSTS {
                return Err(HostlistError(format!("more than {MAX_HOSTS} hosts")));
            }
            hosts.push(host);
        }
    }
    if hosts.is_empty() {
        return Err(HostlistError("no host names".into()));
    }
    Ok(hosts)
}

/// The first host of a SLURM host list, without expanding the rest.
pub fn first_host(list: &str) -> Result<String, HostlistError> {
    let first_item = split_top_level(list)?
        .into_iter()
        .map(str::trim)
        .find(|s| !s.is_empty())
        .ok_or_else(|| HostlistError("no host names".into()))?;
    let mut out = String::new();
    let mut rest = first_item;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let close = rest[open..]
            .find(']')
            .map(|c| open + c)
            .ok_or_else(|| HostlistError(format!("unclosed `[` in `{first_item}`")))?;
        let ranges = parse_ranges(&rest[open + 1..close], first_item)?;
        out.push_str(&ranges[0].format(ranges[0].lo));
        rest = &rest[close + 1..];
    }
    if rest.contains(']') {
        return Err(HostlistError(format!("unmatched `]` in `{first_item}`")));
    }
    out.push_str(rest);
    Ok(out)
}

/// Splits at commas that are not inside brackets.
fn split_top_level(list: &str) -> Result<Vec<&str>, HostlistError> {
    let mut items = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in list.char_indices() {
        match c {
            '[' => {
                if depth > 0 {
                    return Err(HostlistError(format!("nested `[` in `{list}`")));
                }
                depth += 1;
            }
            ']' => {
                if depth == 0 {
                    return Err(HostlistError(format!("unmatched `]` in `{list}`")));
                }
                depth -= 1;
            }
            ',' if depth == 0 => {
                items.push(&list[start..i]);
                start = i + 1;
            }
            c if c.is_whitespace() => {
                return Err(HostlistError(format!("white space in `{list}`")));
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(HostlistError(format!("unclosed `[` in `{list}`")));
    }
    items.push(&list[start..]);
    Ok(items)
}

/// One numeric range of a bracket group: `lo..=hi`, printed `width` digits wide (zero padded).
#[derive(Debug, Clone, Copy)]
struct Range {
    lo: u64,
    hi: u64,
    width: usize,
}

impl Range {
    fn format(&self, n: u64) -> String {
        format!("{n:0width$}", width = self.width)
    }
}

fn parse_ranges(inner: &str, item: &str) -> Result<Vec<Range>, HostlistError> {
    let bad = |why: &str| HostlistError(format!("`[{inner}]` in `{item}`: {why}"));
    let mut ranges = Vec::new();
    for part in inner.split(',') {
        let (lo_s, hi_s) = part.split_once('-').unwrap_or((part, part));
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(lo_s) || !digits(hi_s) {
            return Err(bad(&format!("`{part}` is not a number or a range a-b")));
        }
        let lo: u64 = lo_s.parse().map_err(|_| bad("number too large"))?;
        let hi: u64 = hi_s.parse().map_err(|_| bad("number too large"))?;
        if hi < lo {
            return Err(bad(&format!("range `{part}` runs backwards")));
        }
        if hi - lo >= MAX_HOSTS as u64 {
            return Err(bad(&format!("range `{part}` is too long")));
        }
        ranges.push(Range {
            lo,
            hi,
            width: lo_s.len(),
        });
    }
    Ok(ranges)
}

/// Expands one comma-free item: literal text and bracket groups, multiplied out left to right.
fn expand_item(item: &str) -> Result<Vec<String>, HostlistError> {
    let mut prefixes = vec![String::new()];
    let mut rest = item;
    while let Some(open) = rest.find('[') {
        let literal = &rest[..open];
        let close = rest[open..]
            .find(']')
            .map(|c| open + c)
            .ok_or_else(|| HostlistError(format!("unclosed `[` in `{item}`")))?;
        let ranges = parse_ranges(&rest[open + 1..close], item)?;
        let count: u64 = ranges.iter().map(|r| r.hi - r.lo + 1).sum();
        if prefixes.len() as u64 * count > MAX_HOSTS as u64 {
            return Err(HostlistError(format!(
                "`{item}` names more than {MAX_HOSTS} hosts"
            )));
        }
        let mut next = Vec::with_capacity(prefixes.len() * count as usize);
        for p in &prefixes {
            for r in &ranges {
                for n in r.lo..=r.hi {
                    next.push(format!("{p}{literal}{}", r.format(n)));
                }
            }
        }
        prefixes = next;
        rest = &rest[close + 1..];
    }
    Ok(prefixes.into_iter().map(|p| format!("{p}{rest}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(s: &str) -> Vec<String> {
        expand_hostlist(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn ranges_lists_and_plain_hosts_expand_in_order_with_padding() {
        assert_eq!(
            expand("node[01-03,07],gpu5"),
            ["node01", "node02", "node03", "node07", "gpu5"]
        );
        assert_eq!(expand("gpu5"), ["gpu5"]);
        assert_eq!(expand("a1,b2"), ["a1", "b2"]);
        assert_eq!(expand("n[8-11]"), ["n8", "n9", "n10", "n11"]);
        assert_eq!(expand("n[098-101]"), ["n098", "n099", "n100", "n101"]);
        assert_eq!(
            expand("rack[1-2]-node[1,3]"),
            ["rack1-node1", "rack1-node3", "rack2-node1", "rack2-node3"]
        );
        assert_eq!(expand("c[5]x"), ["c5x"]);
        assert_eq!(first_host("node[01-03,07],gpu5").unwrap(), "node01");
        assert_eq!(first_host("gpu5,node[1-2]").unwrap(), "gpu5");
        assert_eq!(first_host("r[2-3]n[07-9]").unwrap(), "r2n07");
    }

    #[test]
    fn malformed_lists_are_errors_that_quote_them() {
        for bad in [
            "node[01-03",
            "node01-03]",
            "node[3-1]",
            "node[a-b]",
            "node[]",
            "node[1-]",
            "",
            ",",
            "node[[1]]",
            "node 1",
            "n[0-99999999]",
        ] {
            let e = expand_hostlist(bad).expect_err(bad);
            assert!(!e.0.is_empty(), "{bad}");
        }
        assert!(first_host("node[01-03").is_err());
        assert!(
            expand_hostlist("node[3-1]")
                .unwrap_err()
                .0
                .contains("node[3-1]")
        );
    }
}
