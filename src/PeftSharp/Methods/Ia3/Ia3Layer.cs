using PeftSharp.Core;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Methods.Ia3;

/// <summary>
/// (IA)³ on a Linear or GPT-2 Conv1D, with PEFT's names (<c>ia3_l.&lt;adapter&gt;</c>, saved as <c>ia3_l</c>): a vector
/// <c>l</c> of shape <c>[out, 1]</c> scales the output (bias included), or <c>[1, in]</c> on a feed-forward module scales
/// the input. Several active adapters multiply, as in PEFT. Merging multiplies W's rows (or columns) by <c>l</c>, and the
/// bias of a non-feed-forward layer; unmerging divides by <c>l + 1e-8</c>, as PEFT does.
/// </summary>
public sealed class Ia3Layer : AdapterLayer
{
    private readonly AdapterParameterDict _l = new();
    private readonly Dictionary<string, bool> _feedforward = [];
    private bool _isFeedforward;

    public Ia3Layer(BaseLayer baseLayer) : base(nameof(Ia3Layer), baseLayer)
    {
        register_module("ia3_l", _l);
    }

    public override string PeftType => Ia3Config.Type;

    /// <summary>Whether the layer rescales its input (a feed-forward module) rather than its output.</summary>
    public bool IsFeedforward => _isFeedforward;

    protected override void CreateAdapter(string adapterName, AdapterConfig config)
    {
        var c = (Ia3Config)config;
        if (_feedforward.Count > 0 && IsFeedforward != c.IsFeedforward)
        {
            throw new PeftException(
                $"IA3 adapter '{adapterName}' treats this layer as {(c.IsFeedforward ? "" : "not ")}feed-forward, unlike the adapters already on it");
        }
        long[] shape = c.IsFeedforward ? [1, Base.InFeatures] : [Base.OutFeatures, 1];
        var l = new Parameter(c.InitIa3Weights
            ? torch.ones(shape, dtype: Base.DType, device: Base.Device)
            : torch.randn(shape, dtype: Base.DType, device: Base.Device));
        _l.Set(adapterName, l);
        _feedforward[adapterName] = c.IsFeedforward;
        _isFeedforward = c.IsFeedforward;
    }

    protected override void RemoveAdapter(string adapterName)
    {
        _l.Remove(adapterName);
        _feedforward.Remove(adapterName);
    }

    public override Tensor forward(Tensor x)
    {
        // The input side needs the scale before the base layer runs: done here for the plain path (all active adapters
        // multiply, as PEFT's ia3_scaling); routing, merged and disabled cases keep the shared logic.
        if (!_isFeedforward || RowAdapters is not null || Disabled || ActiveAdapters.All(MergedAdapters.Contains))
        {
            return base.forward(x);
        }
        using var scope = torch.NewDisposeScope();
        var scaled = x;
        foreach (var name in ActiveAdapters)
        {
            if (!MergedAdapters.Contains(name))
            {
                scaled = scaled * _l[name].flatten();
            }
        }
        return Base.Module.call(scaled).MoveToOuterDisposeScope();
    }

    protected override Tensor ApplyAdapter(string adapterName, Tensor x, Tensor result) =>
        // Feed-forward: reached only from a mixed batch, one adapter per group of rows, so base(l ⊙ x) is that group's output.
        _feedforward[adapterName] ? Base.Module.call(x * _l[adapterName].flatten()) : result * _l[adapterName].flatten();

    /// <summary><c>W ⊙ l − W</c> in <c>[out, in]</c> layout: the change merging makes to the weight.</summary>
    public override Tensor? DeltaWeight(string adapterName)
    {
        var w = Base.OutInWeight();
        return w * _l[adapterName].to(w.dtype) - w;
    }

    /// <summary><c>b ⊙ l − b</c> for a layer that scales its output and has a bias; otherwise null.</summary>
    public override Tensor? DeltaBias(string adapterName) =>
        _feedforward[adapterName] || Base.Bias is not { } b ? null : b * _l[adapterName].flatten().to(b.dtype) - b;

    protected override void MergeInto(string adapterName)
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var w = Base.OutInWeight().detach();
        Base.SetFromOutIn(w * _l[adapterName].to(w.dtype));  // l [out, 1] scales rows, [1, in] columns
        if (!_feedforward[adapterName] && Base.Bias is { } bias)
        {
            bias.mul_(_l[adapterName].flatten().to(bias.dtype));
        }
    }

    protected override void UnmergeFrom(string adapterName)
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var w = Base.OutInWeight().detach();
        Base.SetFromOutIn(w / (_l[adapterName].to(w.dtype) + 1e-8));
        if (!_feedforward[adapterName] && Base.Bias is { } bias)
        {
            bias.div_(_l[adapterName].flatten().to(bias.dtype) + 1e-8);
        }
    }

    public override IReadOnlyDictionary<string, Tensor> AdapterTensors(string adapterName) =>
        new Dictionary<string, Tensor> { ["ia3_l"] = _l[adapterName] };
}
