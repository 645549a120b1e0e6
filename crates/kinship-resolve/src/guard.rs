use std::fmt;

/// Why a join was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The joined profile would hold more distinct values of this kind than allowed.
    Limit { kind: String, limit: u32 },
    /// Two records that a person split apart would be together again.
    CannotLink,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Limit { kind, limit } => write!(f, "would give one profile more than {limit} distinct {kind} value(s)"),
            Self::CannotLink => f.write_str("would join records that were split apart"),
        }
    }
}

/// Union-find over records where every cluster knows its identifiers, so a merge can be
/// refused before it happens.
pub struct GuardedClusters {
    parent: Vec<u32>,
    size: Vec<u32>,
    /// Per root: sorted distinct identifier ids of the cluster.
    ids: Vec<Vec<u32>>,
    /// Per root: records that may never share its cluster (rarely non-empty).
    apart: Vec<Vec<u32>>,
    kind_of: Vec<u16>,
    /// Per kind id: its name and its limit.
    kinds: Vec<(String, Option<u32>)>,
}

impl GuardedClusters {
    /// `ids[r]` are record r's identifier ids; `kind_of[id]` their kinds; `kinds[k]` the name
    /// of kind k and the most distinct values of it a cluster may hold.
    pub fn new(ids: Vec<Vec<u32>>, kind_of: Vec<u16>, kinds: Vec<(String, Option<u32>)>) -> Self {
        let n = ids.len();
        Self { parent: (0..n as u32).collect(), size: vec![1; n], ids, apart: vec![Vec::new(); n], kind_of, kinds }
    }

    pub fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let grand = self.parent[self.parent[x as usize] as usize];
            self.parent[x as usize] = grand;
            x = grand;
        }
        x
    }

    pub fn add_cannot_link(&mut self, a: usize, b: usize) {
        self.apart[a].push(b as u32);
        self.apart[b].push(a as u32);
    }

    /// Merges all clusters of `members` if no guard objects; returns the joins made as
    /// (record already in, record joining) pairs.
    pub fn merge_all(&mut self, members: &[u32]) -> Result<Vec<(u32, u32)>, Refusal> {
        let mut roots: Vec<(u32, u32)> = Vec::new(); // (root, first member seen in it)
        for &m in members {
            let r = self.find(m);
            if !roots.iter().any(|&(root, _)| root == r) {
                roots.push((r, m));
            }
        }
        if roots.len() < 2 {
            return Ok(vec![]);
        }
        self.check(&roots.iter().map(|&(r, _)| r).collect::<Vec<_>>())?;
        let (_, anchor) = roots[0];
        let mut joins = Vec::with_capacity(roots.len() - 1);
        for &(_, member) in &roots[1..] {
            self.union(anchor, member);
            joins.push((anchor, member));
        }
        Ok(joins)
    }

    /// Merges the clusters of `a` and `b` if no guard objects.
    pub fn try_merge(&mut self, a: u32, b: u32) -> Result<bool, Refusal> {
        Ok(!self.merge_all(&[a, b])?.is_empty())
    }

    /// Merges regardless of limits (a person's decision); returns whether anything changed.
    pub fn force_merge(&mut self, a: usize, b: usize) -> bool {
        let (ra, rb) = (self.find(a as u32), self.find(b as u32));
        ra != rb && {
            self.union(a as u32, b as u32);
            true
        }
    }

    fn check(&mut self, roots: &[u32]) -> Result<(), Refusal> {
        for &r in roots {
            for i in 0..self.apart[r as usize].len() {
                let other = self.find(self.apart[r as usize][i]);
                if other != r && roots.contains(&other) {
                    return Err(Refusal::CannotLink);
                }
            }
        }
        let mut all: Vec<u32> = roots.iter().flat_map(|&r| self.ids[r as usize].iter().copied()).collect();
        all.sort_unstable();
        all.dedup();
        let mut per_kind: Vec<u32> = vec![0; self.kinds.len()];
        for id in all {
            per_kind[self.kind_of[id as usize] as usize] += 1;
        }
        for (kind, &count) in per_kind.iter().enumerate() {
            if let (name, Some(limit)) = &self.kinds[kind]
                && count > *limit
                && count > self.most_in_one(roots, kind)
            {
                return Err(Refusal::Limit { kind: name.clone(), limit: *limit });
            }
        }
        Ok(())
    }

    /// Most distinct values of `kind` one of `roots` holds. A cluster already over a limit
    /// (two contacts a person or overwhelming evidence joined) may take in records that
    /// bring no new value of that kind: the join adds nothing the limit guards against.
    fn most_in_one(&self, roots: &[u32], kind: usize) -> u32 {
        roots
            .iter()
            .map(|&r| self.ids[r as usize].iter().filter(|&&id| self.kind_of[id as usize] as usize == kind).count() as u32)
            .max()
            .unwrap_or(0)
    }

    fn union(&mut self, a: u32, b: u32) {
        let (mut ra, mut rb) = (self.find(a), self.find(b));
        if ra == rb {
            return;
        }
        if self.size[ra as usize] < self.size[rb as usize] {
            std::mem::swap(&mut ra, &mut rb);
        }
        self.parent[rb as usize] = ra;
        self.size[ra as usize] += self.size[rb as usize];
        let moved = std::mem::take(&mut self.ids[rb as usize]);
        let ids = &mut self.ids[ra as usize];
        ids.extend(moved);
        ids.sort_unstable();
        ids.dedup();
        let apart = std::mem::take(&mut self.apart[rb as usize]);
        self.apart[ra as usize].extend(apart);
    }

    /// Dense cluster labels in order of first appearance, and their count.
    pub fn dense_labels(&mut self) -> (Vec<u32>, u32) {
        let n = self.parent.len();
        let mut label = vec![u32::MAX; n];
        let mut out = Vec::with_capacity(n);
        let mut next = 0;
        for i in 0..n as u32 {
            let r = self.find(i) as usize;
            if label[r] == u32::MAX {
                label[r] = next;
                next += 1;
            }
            out.push(label[r]);
        }
        (out, next)
    }
}
