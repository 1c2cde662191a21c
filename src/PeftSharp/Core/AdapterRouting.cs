using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Core;

/// <summary>
/// Which adapter each row of a batch runs (PEFT's <c>adapter_names=</c> forward argument), grouped once into the distinct
/// adapters and their rows. A group whose rows are consecutive is addressed by a view (<c>narrow</c>), any other by an index
/// tensor built once per device. Created by <see cref="PeftModel.UseAdapterPerRow"/>; disposing it frees those indices.
/// </summary>
public sealed class AdapterRouting : IDisposable
{
    /// <summary>The row name that runs the base model alone (PEFT's <c>"__base__"</c>).</summary>
    public const string BaseName = "__base__";

    private readonly Dictionary<(int Group, string Device), Tensor> _indices = [];
    private readonly List<(double[] RowWeights, DeviceType Type, int Index, ScalarType DType, Tensor Tensor)> _rowWeights = [];

    internal AdapterRouting(IReadOnlyList<string> rowAdapters)
    {
        RowAdapters = [.. rowAdapters];
        var groups = new List<RowGroup>();
        foreach (var name in RowAdapters.Distinct())
        {
            var rows = Enumerable.Range(0, RowAdapters.Count).Where(i => RowAdapters[i] == name).Select(i => (long)i).ToArray();
            var contiguous = rows[^1] - rows[0] + 1 == rows.Length;
            groups.Add(new RowGroup(name, rows, contiguous));
        }
        Groups = groups;
    }

    /// <summary>The adapter of each row, in batch order.</summary>
    public IReadOnlyList<string> RowAdapters { get; }

    /// <summary>The distinct names (<see cref="BaseName"/> included), in order of first appearance, with their rows.</summary>
    public IReadOnlyList<RowGroup> Groups { get; }

    /// <summary>Batch rows this routing expects.</summary>
    public int BatchSize => RowAdapters.Count;

    /// <summary>
    /// Runs <paramref name="apply"/> on each group's rows of <paramref name="x"/> and <paramref name="result"/> and writes its
    /// output back into those rows of <paramref name="result"/> (in place; <paramref name="result"/> must be a fresh tensor of
    /// the caller's). Groups for which <paramref name="skip"/> is true keep their rows of <paramref name="result"/>. A
    /// group covering the whole batch returns <c>apply(x, result)</c> directly.
    /// </summary>
    internal Tensor Scatter(Tensor x, Tensor result, Func<string, bool> skip, Func<string, Tensor, Tensor, Tensor> apply, string where)
    {
        CheckRows(x, where);
        for (var g = 0; g < Groups.Count; g++)
        {
            var group = Groups[g];
            if (skip(group.Adapter))
            {
                continue;
            }
            if (group.Rows.Length == BatchSize)
            {
                return apply(group.Adapter, x, result);
            }
            if (group.Contiguous)
            {
                var start = group.Rows[0];
                var rows = result.narrow(0, start, group.Rows.Length);
                rows.copy_(apply(group.Adapter, x.narrow(0, start, group.Rows.Length), rows));
            }
            else
            {
                var index = Index(g, x.device);
                result.index_copy_(0, index, apply(group.Adapter, x.index_select(0, index), result.index_select(0, index)));
            }
        }
        return result;
    }

    /// <summary>Throws unless <paramref name="x"/> has one row per adapter name.</summary>
    internal void CheckRows(Tensor x, string where)
    {
        if (x.shape[0] != BatchSize)
        {
            throw new PeftException($"per-row adapters: {BatchSize} adapter name(s) for a batch of {x.shape[0]} row(s) (at {where})");
        }
    }

    /// <summary>
    /// The per-row plan of a batched kernel over the adapters <paramref name="slots"/> (punica/S-LoRA style): <c>Slots</c>
    /// holds each row's position in <paramref name="slots"/>, and <c>Weight</c> <c>[batch, 1, 1]</c> in
    /// <paramref name="dtype"/> is <c>weights[slot]</c>, shaped to scale a <c>[batch, tokens, features]</c> product. A row
    /// whose adapter is not among the slots (<see cref="BaseName"/>, or one the layer does not hold) gets slot 0 and weight
    /// 0. <c>Weight</c> is null when every row's weight is exactly 1; otherwise it is built once per distinct (row weights,
    /// device, dtype) and kept until disposal, since the layers of a model mostly share one.
    /// </summary>
    internal (int[] Slots, Tensor? Weight) RowSlots(IReadOnlyList<string> slots, IReadOnlyList<double> weights, Device device, ScalarType dtype)
    {
        var slot = new int[BatchSize];
        var weight = new double[BatchSize];
        var unit = true;
        for (var i = 0; i < BatchSize; i++)
        {
            var k = IndexOf(slots, RowAdapters[i]);
            slot[i] = Math.Max(k, 0);
            weight[i] = k < 0 ? 0.0 : weights[k];
            unit &= weight[i] == 1.0;
        }
        if (unit)
        {
            return (slot, null);
        }
        lock (_rowWeights)
        {
            foreach (var (cached, type, index, cachedDType, tensor) in _rowWeights)
            {
                if (type == device.type && index == device.index && cachedDType == dtype && cached.AsSpan().SequenceEqual(weight))
                {
                    return (slot, tensor);
                }
            }
            // Kept across forwards like the group indices, so outside any dispose scope.
            using var scope = torch.NewDisposeScope();
            var made = torch.tensor(weight, [BatchSize, 1, 1], dtype, device).DetachFromDisposeScope();
            _rowWeights.Add((weight, device.type, device.index, dtype, made));
            return (slot, made);
        }
    }

    private static int IndexOf(IReadOnlyList<string> names, string name)
    {
        for (var k = 0; k < names.Count; k++)
        {
            if (names[k] == name)
            {
                return k;
            }
        }
        return -1;
    }

    private Tensor Index(int group, Device device)
    {
        var key = (group, device.ToString());
        lock (_indices)
        {
            if (!_indices.TryGetValue(key, out var index))
            {
                // Kept across forwards (every adapted layer and every generation step uses it), so outside any dispose scope.
                index = torch.tensor(Groups[group].Rows, ScalarType.Int64, device).DetachFromDisposeScope();
                _indices[key] = index;
            }
            return index;
        }
    }

    public void Dispose()
    {
        lock (_indices)
        {
            foreach (var t in _indices.Values)
            {
                t.Dispose();
            }
            _indices.Clear();
        }
        lock (_rowWeights)
        {
            foreach (var entry in _rowWeights)
            {
                entry.Tensor.Dispose();
            }
            _rowWeights.Clear();
        }
    }
}

/// <summary>One adapter of a routed batch and the rows (ascending) that run it; <paramref name="Contiguous"/> when they are consecutive.</summary>
public sealed record RowGroup(string Adapter, long[] Rows, bool Contiguous);
