using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Merging;

/// <summary>
/// Seeded k-means: k-means++ seeding (Arthur and Vassilvitskii, 2007), then Lloyd iterations until the assignment stops
/// changing. Deterministic for a seed: the D² draws come from <see cref="Random"/> with that seed, distance ties go to the
/// lower cluster index, and an emptied cluster takes the point farthest from its centre.
/// </summary>
internal static class KMeans
{
    /// <summary>Cluster index of each row of <paramref name="points"/> <c>[N, D]</c>.</summary>
    public static int[] Cluster(Tensor points, int k, long seed, int maxIterations)
    {
        var n = (int)points.shape[0];
        if (k < 1 || k > n)
        {
            throw new PeftException($"k-means needs 1 ≤ k ≤ N, got k = {k} for N = {n} points");
        }
        using var scope = torch.NewDisposeScope();
        var x = points.to(ScalarType.Float64);
        var centres = x.index_select(0, torch.tensor(Seeding(x, k, seed))).clone();
        var assignment = Assign(x, centres);
        for (var iteration = 0; iteration < maxIterations; iteration++)
        {
            centres = Means(x, assignment, k, centres);
            var next = Assign(x, centres);
            if (next.SequenceEqual(assignment))
            {
                break;
            }
            assignment = next;
        }
        return assignment;
    }

    // k-means++: the first centre uniformly, each next one with probability ∝ squared distance to the nearest chosen
    // centre; when every remaining point sits on a centre (duplicates), the first point not yet chosen.
    private static long[] Seeding(Tensor x, int k, long seed)
    {
        var random = new Random(unchecked((int)(seed ^ (seed >> 32))));
        var n = (int)x.shape[0];
        var chosen = new List<long> { random.Next(n) };
        var nearest = Distances(x, x[chosen[0]].unsqueeze(0)).squeeze(1);
        while (chosen.Count < k)
        {
            var d2 = nearest.data<double>().ToArray();
            var total = d2.Sum();
            long pick;
            if (total <= 0)
            {
                pick = Enumerable.Range(0, n).First(i => !chosen.Contains(i));
            }
            else
            {
                var r = random.NextDouble() * total;
                pick = n - 1;
                var acc = 0.0;
                for (var i = 0; i < n; i++)
                {
                    acc += d2[i];
                    if (d2[i] > 0 && r < acc)
                    {
                        pick = i;
                        break;
                    }
                }
                while (d2[pick] <= 0)
                {
                    pick--;
                }
            }
            chosen.Add(pick);
            nearest = torch.minimum(nearest, Distances(x, x[pick].unsqueeze(0)).squeeze(1));
        }
        return [.. chosen];
    }

    private static int[] Assign(Tensor x, Tensor centres)
    {
        using var d = Distances(x, centres);
        using var best = d.argmin(1);
        return best.data<long>().Select(i => (int)i).ToArray();
    }

    private static Tensor Means(Tensor x, int[] assignment, int k, Tensor previous)
    {
        var rows = new List<Tensor>();
        var counts = new int[k];
        foreach (var a in assignment)
        {
            counts[a]++;
        }
        for (var j = 0; j < k; j++)
        {
            if (counts[j] == 0)
            {
                // An emptied cluster restarts at the point farthest from its own centre.
                using var own = Distances(x, previous).gather(1, torch.tensor(assignment.Select(a => (long)a).ToArray()).unsqueeze(1)).squeeze(1);
                var far = own.argmax().item<long>();
                rows.Add(x[far]);
                continue;
            }
            var members = torch.tensor(Enumerable.Range(0, assignment.Length).Where(i => assignment[i] == j).Select(i => (long)i).ToArray());
            rows.Add(x.index_select(0, members).mean([0L]));
        }
        return torch.stack(rows, 0);
    }

    // Squared Euclidean distances [N, K], one centre at a time (memory N·D, not N·K·D) and directly, not by
    // ‖x‖² + ‖c‖² − 2x·c, so that a point's distance to itself is exactly 0.
    private static Tensor Distances(Tensor x, Tensor centres)
    {
        using var scope = torch.NewDisposeScope();
        var columns = new List<Tensor>();
        for (var j = 0; j < centres.shape[0]; j++)
        {
            columns.Add((x - centres[j]).square().sum(-1L));
        }
        return torch.stack(columns, 1).MoveToOuterDisposeScope();
    }
}
