using PeftSharp.Core;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Federated;

/// <summary>
/// Server-side aggregation of client LoRA updates: FLoRA's exact stacking (arXiv 2409.05976,
/// ATP-1010/FederatedLLM <c>fed_utils/model_aggregation.py</c>) and the two baselines it is compared with, FedIT's
/// averaging of A and B and zero-padded averaging for heterogeneous ranks. Client weights are p_k = n_k / Σn. The
/// inputs are only read; the result owns new tensors.
/// </summary>
public static class FederatedAggregation
{
    /// <summary>p_k = n_k / Σn (the L1-normalised local data sizes, as the official code's <c>normalize(p=1)</c>).</summary>
    public static double[] ClientWeights(IReadOnlyList<ClientUpdate> clients)
    {
        Validate(clients);
        double total = clients.Sum(c => (double)c.DataSize);
        return clients.Select(c => c.DataSize / total).ToArray();
    }

    /// <summary>Combines the clients' updates with <paramref name="kind"/>.</summary>
    public static GlobalUpdate Aggregate(IReadOnlyList<ClientUpdate> clients, AggregationKind kind) => kind switch
    {
        AggregationKind.Stack => Stack(clients),
        AggregationKind.Average => Average(clients),
        _ => ZeroPad(clients),
    };

    /// <summary>
    /// FLoRA stacking: per module A = [p₁s₁A₁; …; p_Ks_KA_K] (rows) and B = [B₁ … B_K] (columns), scale 1, so
    /// B·A = Σ p_k s_k B_k A_k exactly. Ranks may differ between clients; the result has rank Σr_k. The official code
    /// multiplies p_k into A only; any split of p_k s_k between the factors gives the same product.
    /// </summary>
    public static GlobalUpdate Stack(IReadOnlyList<ClientUpdate> clients)
    {
        var p = ClientWeights(clients);
        var modules = new Dictionary<string, ModuleFactors>(StringComparer.Ordinal);
        foreach (var name in clients[0].Modules.Keys)
        {
            using var scope = torch.NewDisposeScope();
            var a = torch.cat(clients.Select((c, k) => c.Modules[name].A * (p[k] * c.Modules[name].Scaling)).ToList(), 0);
            var b = torch.cat(clients.Select(c => c.Modules[name].B).ToList(), 1);
            modules[name] = new ModuleFactors(a.MoveToOuterDisposeScope(), b.MoveToOuterDisposeScope(), 1.0);
        }
        return new GlobalUpdate(AggregationKind.Stack, WeightsById(clients, p), modules, AverageDense(clients, p));
    }

    /// <summary>
    /// FedIT / FedAvg: per module A = Σ p_k A_k and B = Σ p_k B_k with the clients' common scale s (when the scales
    /// differ, each s_k is folded into its B_k and the scale is 1). Every client must have the same rank per module.
    /// </summary>
    public static GlobalUpdate Average(IReadOnlyList<ClientUpdate> clients)
    {
        Validate(clients);
        foreach (var name in clients[0].Modules.Keys)
        {
            var ranks = clients.Select(c => c.Modules[name].Rank).ToList();
            if (ranks.Distinct().Count() > 1)
            {
                var odd = clients.First(c => c.Modules[name].Rank != ranks[0]);
                throw new PeftException(
                    $"avg (FedIT) needs equal client ranks: '{name}' has r={ranks[0]} in client '{clients[0].ClientId}' but r={odd.Modules[name].Rank} in client '{odd.ClientId}' (ranks {string.Join(",", ranks)}); use stack or zeropad for heterogeneous ranks");
            }
        }
        return Averaged(clients, AggregationKind.Average, padTo: null);
    }

    /// <summary>
    /// Zero-padding baseline for heterogeneous ranks: each A_k gains zero rows and each B_k zero columns up to the
    /// largest client rank r_max, then the padded factors are averaged as <see cref="Average"/> does.
    /// </summary>
    public static GlobalUpdate ZeroPad(IReadOnlyList<ClientUpdate> clients)
    {
        Validate(clients);
        return Averaged(clients, AggregationKind.ZeroPad, padTo: name => clients.Max(c => c.Modules[name].Rank));
    }

    /// <summary>
    /// FLoRA's "aggregation noise" as a number: ‖ΔW_global − Σ p_k s_k B_k A_k‖_F / ‖Σ p_k s_k B_k A_k‖_F, with the
    /// squares summed over all modules. 0 (to rounding) for stacking; the gap of the averaging baselines otherwise.
    /// </summary>
    public static double AggregationError(GlobalUpdate global, IReadOnlyList<ClientUpdate> clients)
    {
        var p = ClientWeights(clients);
        double error = 0, norm = 0;
        foreach (var name in clients[0].Modules.Keys)
        {
            using var scope = torch.NewDisposeScope();
            var exact = clients.Select((c, k) => c.Modules[name].Delta() * p[k]).Aggregate((x, y) => x + y).to(ScalarType.Float64);
            var diff = global.Delta(name).to(ScalarType.Float64) - exact;
            error += diff.square().sum().item<double>();
            norm += exact.square().sum().item<double>();
        }
        return norm == 0 ? Math.Sqrt(error) : Math.Sqrt(error / norm);
    }

    private static GlobalUpdate Averaged(IReadOnlyList<ClientUpdate> clients, AggregationKind kind, Func<string, long>? padTo)
    {
        var p = ClientWeights(clients);
        var modules = new Dictionary<string, ModuleFactors>(StringComparer.Ordinal);
        foreach (var name in clients[0].Modules.Keys)
        {
            using var scope = torch.NewDisposeScope();
            var factors = clients.Select(c => c.Modules[name]).ToList();
            var r = padTo?.Invoke(name) ?? factors[0].Rank;
            var sameScale = factors.All(f => f.Scaling == factors[0].Scaling);
            Tensor? a = null;
            Tensor? b = null;
            for (var k = 0; k < factors.Count; k++)
            {
                var f = factors[k];
                var ak = Padded(f.A, 0, r) * p[k];
                var bk = Padded(f.B, 1, r) * (sameScale ? p[k] : p[k] * f.Scaling);
                a = a is null ? ak : a + ak;
                b = b is null ? bk : b + bk;
            }
            modules[name] = new ModuleFactors(a!.MoveToOuterDisposeScope(), b!.MoveToOuterDisposeScope(), sameScale ? factors[0].Scaling : 1.0);
        }
        return new GlobalUpdate(kind, WeightsById(clients, p), modules, AverageDense(clients, p));
    }

    private static Tensor Padded(Tensor t, int dim, long rank)
    {
        var missing = rank - t.shape[dim];
        if (missing == 0)
        {
            return t;
        }
        var shape = t.shape.ToArray();
        shape[dim] = missing;
        return torch.cat([t, torch.zeros(shape, t.dtype, t.device)], dim);
    }

    private static Dictionary<string, Tensor> AverageDense(IReadOnlyList<ClientUpdate> clients, double[] p)
    {
        var dense = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var name in clients[0].DenseWeights.Keys)
        {
            using var scope = torch.NewDisposeScope();
            Tensor? sum = null;
            for (var k = 0; k < clients.Count; k++)
            {
                var term = clients[k].DenseWeights[name] * p[k];
                sum = sum is null ? term : sum + term;
            }
            dense[name] = sum!.MoveToOuterDisposeScope();
        }
        return dense;
    }

    private static Dictionary<string, double> WeightsById(IReadOnlyList<ClientUpdate> clients, double[] p) =>
        clients.Select((c, k) => (c.ClientId, p[k])).ToDictionary(x => x.ClientId, x => x.Item2, StringComparer.Ordinal);

    /// <summary>
    /// Checks that the clients can be aggregated: at least one, distinct ids, positive data sizes, one base model, the
    /// same adapted modules and dense weights, and factor shapes that agree (A <c>[r_k, in]</c>, B <c>[out, r_k]</c>).
    /// Every message names the two clients that disagree.
    /// </summary>
    public static void Validate(IReadOnlyList<ClientUpdate> clients)
    {
        if (clients.Count == 0)
        {
            throw new PeftException("no client updates to aggregate");
        }
        var first = clients[0];
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var c in clients)
        {
            if (!seen.Add(c.ClientId))
            {
                throw new PeftException($"client id '{c.ClientId}' appears twice");
            }
            if (c.DataSize <= 0)
            {
                throw new PeftException($"client '{c.ClientId}' has data size {c.DataSize}; every client needs one training example or more (its weight is n_k / Σn)");
            }
            if (!string.Equals(c.BaseModel, first.BaseModel, StringComparison.Ordinal))
            {
                throw new ModelMismatchException($"client '{c.ClientId}' was trained on base model '{c.BaseModel}' but client '{first.ClientId}' on '{first.BaseModel}'; all clients must adapt the same base model");
            }
            CheckSameKeys(first, c, first.Modules.Keys, c.Modules.Keys, "adapts target modules");
            CheckSameKeys(first, c, first.DenseWeights.Keys, c.DenseWeights.Keys, "trains dense weights (modules_to_save)");
            foreach (var (name, f) in c.Modules)
            {
                var g = first.Modules[name];
                if (f.A.dim() != 2 || f.B.dim() != 2 || f.A.shape[0] != f.B.shape[1])
                {
                    throw new PeftException($"client '{c.ClientId}': '{name}' has lora_A [{string.Join(", ", f.A.shape)}] and lora_B [{string.Join(", ", f.B.shape)}]; expected A [r, in] and B [out, r]");
                }
                if (f.A.shape[1] != g.A.shape[1] || f.B.shape[0] != g.B.shape[0])
                {
                    throw new ModelMismatchException($"'{name}': client '{c.ClientId}' has ΔW [{f.B.shape[0]}, {f.A.shape[1]}] but client '{first.ClientId}' has [{g.B.shape[0]}, {g.A.shape[1]}]; different base models?");
                }
            }
            foreach (var (name, t) in c.DenseWeights)
            {
                if (!t.shape.SequenceEqual(first.DenseWeights[name].shape))
                {
                    throw new ModelMismatchException($"dense weight '{name}': client '{c.ClientId}' has [{string.Join(", ", t.shape)}] but client '{first.ClientId}' has [{string.Join(", ", first.DenseWeights[name].shape)}]");
                }
            }
        }
    }

    private static void CheckSameKeys(ClientUpdate first, ClientUpdate other, IEnumerable<string> a, IEnumerable<string> b, string what)
    {
        var onlyFirst = a.Except(b, StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        var onlyOther = b.Except(a, StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        if (onlyFirst.Count == 0 && onlyOther.Count == 0)
        {
            return;
        }
        static string List(List<string> xs) => xs.Count == 0 ? "none" : string.Join(", ", xs.Take(4)) + (xs.Count > 4 ? $", … ({xs.Count})" : "");
        throw new PeftException(
            $"client '{other.ClientId}' and client '{first.ClientId}' differ in what each {what}: only in '{first.ClientId}': {List(onlyFirst)}; only in '{other.ClientId}': {List(onlyOther)}. All clients must use the same target modules");
    }
}
