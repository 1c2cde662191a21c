using PeftSharp.Data;

namespace PeftSharp.Federated;

/// <summary>One client's share of a split: the indices of its examples and how many of each class it holds.</summary>
public sealed record ClientShard(int Client, IReadOnlyList<int> Indices, IReadOnlyList<int> LabelCounts);

/// <summary>
/// The usual non-IID federated split of a labelled dataset (Hsu et al. 2019, "Measuring the effects of non-identical
/// data distribution"): for every class c, proportions q_c ~ Dirichlet(α, …, α) over the K clients; the class's
/// examples, in seeded random order, are cut at the cumulative proportions. Small α gives each client few classes;
/// large α tends to the IID split. Deterministic for a seed (System.Random, Marsaglia–Tsang gamma draws).
/// </summary>
public static class DirichletSplit
{
    /// <summary>
    /// Splits examples with the given class <paramref name="labels"/> (ids 0 … <paramref name="classes"/>-1) among
    /// <paramref name="clients"/> clients.
    /// </summary>
    /// <exception cref="PeftException">A client would receive no example (raise α or change the seed), or bad arguments.</exception>
    public static IReadOnlyList<ClientShard> Split(IReadOnlyList<int> labels, int classes, int clients, double alpha, int seed)
    {
        if (clients < 1)
        {
            throw new PeftException($"the number of clients must be ≥ 1, got {clients}");
        }
        if (!(alpha > 0) || double.IsInfinity(alpha))
        {
            throw new PeftException($"the Dirichlet concentration α must be a positive number, got {alpha}");
        }
        var bad = labels.Where(l => l < 0 || l >= classes).Select(l => (int?)l).FirstOrDefault();
        if (bad is not null)
        {
            throw new PeftException($"labels must be in [0, {classes}); found {bad}");
        }
        var rng = new Random(seed);
        var members = Enumerable.Range(0, clients).Select(_ => new List<int>()).ToArray();
        var counts = Enumerable.Range(0, clients).Select(_ => new int[classes]).ToArray();
        for (var c = 0; c < classes; c++)
        {
            var ofClass = Enumerable.Range(0, labels.Count).Where(i => labels[i] == c).ToArray();
            rng.Shuffle(ofClass);
            var q = Dirichlet(rng, clients, alpha);
            var start = 0;
            var cumulative = 0.0;
            for (var k = 0; k < clients; k++)
            {
                cumulative += q[k];
                var end = k == clients - 1 ? ofClass.Length : Math.Min(ofClass.Length, (int)Math.Round(cumulative * ofClass.Length));
                for (var i = start; i < end; i++)
                {
                    members[k].Add(ofClass[i]);
                }
                counts[k][c] += Math.Max(0, end - start);
                start = Math.Max(start, end);
            }
        }
        for (var k = 0; k < clients; k++)
        {
            if (members[k].Count == 0)
            {
                throw new PeftException($"client {k} received no examples under dirichlet:{alpha} with seed {seed} ({labels.Count} examples, {clients} clients); raise α, use fewer clients or another seed");
            }
            members[k].Sort();
        }
        return members.Select((m, k) => new ClientShard(k, m, counts[k])).ToList();
    }

    /// <summary>
    /// Splits a classification <see cref="Dataset"/> with Dirichlet(<paramref name="alpha"/>), or IID when it is null;
    /// each client gets its examples in file order.
    /// </summary>
    public static IReadOnlyList<Dataset> Split(Dataset data, int clients, double? alpha, int seed, out IReadOnlyList<ClientShard> shards)
    {
        var labels = data.Examples.Select(e => e is ClassificationExample c ? c.Label : throw new PeftException($"{data.Source}: a Dirichlet label split needs classification examples, found {e.GetType().Name}")).ToList();
        var classes = data.Labels?.Count ?? throw new PeftException($"{data.Source}: a Dirichlet label split needs labelled data");
        shards = alpha is { } a ? Split(labels, classes, clients, a, seed) : Iid(labels, classes, clients, seed);
        return shards.Select(s => data with
        {
            Source = $"{data.Source} [client {s.Client}]",
            Examples = s.Indices.Select(i => data.Examples[i]).ToList(),
        }).ToList();
    }

    /// <summary>Parses <c>dirichlet:α</c> (e.g. <c>dirichlet:0.5</c>) to α, or <c>iid</c> to null (a seeded round-robin deal).</summary>
    public static double? ParseSpec(string spec)
    {
        if (spec == "iid")
        {
            return null;
        }
        const string prefix = "dirichlet:";
        if (spec.StartsWith(prefix, StringComparison.Ordinal)
            && double.TryParse(spec.AsSpan(prefix.Length), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var a)
            && a > 0 && double.IsFinite(a))
        {
            return a;
        }
        throw new PeftException($"--split '{spec}' is not 'iid' or 'dirichlet:α' with α > 0 (e.g. dirichlet:0.5)");
    }

    /// <summary>An IID split: a seeded permutation dealt round-robin, so client sizes differ by at most one.</summary>
    public static IReadOnlyList<ClientShard> Iid(IReadOnlyList<int> labels, int classes, int clients, int seed)
    {
        if (clients < 1 || labels.Count < clients)
        {
            throw new PeftException($"{labels.Count} examples cannot give each of {clients} clients one example");
        }
        var order = SeededShuffle.Permutation(labels.Count, seed);
        return Enumerable.Range(0, clients).Select(k =>
        {
            var idx = order.Where((_, i) => i % clients == k).Order().ToList();
            var counts = new int[classes];
            foreach (var i in idx)
            {
                counts[labels[i]]++;
            }
            return new ClientShard(k, idx, counts);
        }).ToList();
    }

    private static double[] Dirichlet(Random rng, int k, double alpha)
    {
        var g = new double[k];
        double sum = 0;
        for (var i = 0; i < k; i++)
        {
            g[i] = Gamma(rng, alpha);
            sum += g[i];
        }
        if (sum <= 0)
        {
            // All draws underflowed (tiny α): one client takes the class, as the α → 0 limit does.
            g[rng.Next(k)] = 1;
            sum = 1;
        }
        for (var i = 0; i < k; i++)
        {
            g[i] /= sum;
        }
        return g;
    }

    // Marsaglia & Tsang (2000); for shape < 1, Gamma(a) = Gamma(a + 1)·U^(1/a).
    private static double Gamma(Random rng, double shape)
    {
        if (shape < 1)
        {
            return Gamma(rng, shape + 1) * Math.Pow(1.0 - rng.NextDouble(), 1.0 / shape);
        }
        var d = shape - 1.0 / 3.0;
        var c = 1.0 / Math.Sqrt(9 * d);
        while (true)
        {
            double x, v;
            do
            {
                x = Normal(rng);
                v = 1 + c * x;
            }
            while (v <= 0);
            v = v * v * v;
            var u = 1.0 - rng.NextDouble();
            if (Math.Log(u) < 0.5 * x * x + d - d * v + d * Math.Log(v))
            {
                return d * v;
            }
        }
    }

    private static double Normal(Random rng)
    {
        var u1 = 1.0 - rng.NextDouble();
        var u2 = rng.NextDouble();
        return Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }
}
