using PeftSharp.Core;
using PeftSharp.Methods.Lycoris;
using static TorchSharp.torch;

namespace PeftSharp.Methods.LoHa;

/// <summary>
/// LoHa on a Linear or Conv2d layer, with PEFT's in-memory names (<c>hada_w1_a.&lt;adapter&gt;</c>, …).
/// Linear, and Conv2d without the effective decomposition (kernel flattened into the input dimension):
/// <c>W1a, W2a [out, r]</c>, <c>W1b, W2b [r, in·k_h·k_w]</c>, <c>ΔW = (W1a W1b) ⊙ (W2a W2b) · s</c>.
/// Conv2d with <c>use_effective_conv2d</c> and a kernel larger than 1×1: <c>hada_t1, hada_t2 [r, r, k_h, k_w]</c>,
/// <c>W1a, W2a [r, out]</c>, <c>W1b, W2b [r, in]</c>, each Hadamard factor rebuilt as <c>W·a ×₁ core ×₂ W·b</c>.
/// As PEFT's <c>loha/layer.py</c>.
/// </summary>
public sealed class LoHaLayer : LycorisLayer
{
    private readonly AdapterParameterDict _w1a = new();
    private readonly AdapterParameterDict _w1b = new();
    private readonly AdapterParameterDict _w2a = new();
    private readonly AdapterParameterDict _w2b = new();
    private readonly AdapterParameterDict _t1 = new();
    private readonly AdapterParameterDict _t2 = new();

    public LoHaLayer(BaseLayer baseLayer) : base(nameof(LoHaLayer), baseLayer)
    {
        register_module("hada_w1_a", _w1a);
        register_module("hada_w1_b", _w1b);
        register_module("hada_w2_a", _w2a);
        register_module("hada_w2_b", _w2b);
        register_module("hada_t1", _t1);
        register_module("hada_t2", _t2);
    }

    public override string PeftType => LoHaConfig.Type;

    /// <summary>Whether an adapter uses the effective Conv2d decomposition (it has <c>hada_t1</c> / <c>hada_t2</c>).</summary>
    public bool UsesEffectiveConv2d(string adapterName) => _t1.Contains(adapterName);

    protected override void CreateFactors(string adapterName, LycorisConfig config)
    {
        var c = (LoHaConfig)config;
        var r = c.Rank;
        var shape = WeightShape;
        var outDim = shape[0];
        if (c.UseEffectiveConv2d && HasSpatialKernel)
        {
            _t1.Set(adapterName, NewFactor(r, r, shape[2], shape[3]));
            _w1a.Set(adapterName, NewFactor(r, outDim));
            _w1b.Set(adapterName, NewFactor(r, shape[1]));
            _t2.Set(adapterName, NewFactor(r, r, shape[2], shape[3]));
            _w2a.Set(adapterName, NewFactor(r, outDim));
            _w2b.Set(adapterName, NewFactor(r, shape[1]));
            KaimingUniform(_t1[adapterName]);
            KaimingUniform(_t2[adapterName]);
        }
        else
        {
            // Conv2d kernels are flattened into the input side: [out, in/groups · k_h · k_w].
            var inDim = shape.Skip(1).Aggregate(1L, (a, b) => a * b);
            _w1a.Set(adapterName, NewFactor(outDim, r));
            _w1b.Set(adapterName, NewFactor(r, inDim));
            _w2a.Set(adapterName, NewFactor(outDim, r));
            _w2b.Set(adapterName, NewFactor(r, inDim));
        }
        // PEFT's reset_adapter_parameters: one zero factor is enough for ΔW = 0 at init.
        KaimingUniform(_w1a[adapterName]);
        KaimingUniform(_w1b[adapterName]);
        KaimingUniform(_w2a[adapterName]);
        if (c.InitWeights)
        {
            Zeros(_w2b[adapterName]);
        }
        else
        {
            KaimingUniform(_w2b[adapterName]);
        }
    }

    protected override void RemoveFactors(string adapterName)
    {
        _w1a.Remove(adapterName);
        _w1b.Remove(adapterName);
        _w2a.Remove(adapterName);
        _w2b.Remove(adapterName);
        _t1.Remove(adapterName);
        _t2.Remove(adapterName);
    }

    protected override Tensor ComposeUpdate(string adapterName)
    {
        if (_t1.Contains(adapterName))
        {
            return RebuildKernel(_t1[adapterName], _w1a[adapterName], _w1b[adapterName])
                * RebuildKernel(_t2[adapterName], _w2a[adapterName], _w2b[adapterName]);
        }
        return _w1a[adapterName].matmul(_w1b[adapterName]) * _w2a[adapterName].matmul(_w2b[adapterName]);
    }

    public override IReadOnlyDictionary<string, Tensor> AdapterTensors(string adapterName)
    {
        var tensors = new Dictionary<string, Tensor>
        {
            ["hada_w1_a"] = _w1a[adapterName],
            ["hada_w1_b"] = _w1b[adapterName],
            ["hada_w2_a"] = _w2a[adapterName],
            ["hada_w2_b"] = _w2b[adapterName],
        };
        if (_t1.Contains(adapterName))
        {
            tensors["hada_t1"] = _t1[adapterName];
            tensors["hada_t2"] = _t2[adapterName];
        }
        return tensors;
    }
}
