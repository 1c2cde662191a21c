using PeftSharp.Core;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Methods.Lora;

/// <summary>
/// LoRA on a Linear, GPT-2 Conv1D, Embedding or Conv2d layer, with PEFT's in-memory names
/// (<c>lora_A.&lt;adapter&gt;.weight</c>, <c>lora_embedding_A.&lt;adapter&gt;</c>). Forward: <c>base(x) + s·B(A(dropout(x)))</c>.
/// </summary>
public sealed partial class LoraLayer : AdapterLayer
{
    private readonly AdapterModuleDict _loraA = new();
    private readonly AdapterModuleDict _loraB = new();
    private readonly AdapterModuleDict _dropout = new();
    private readonly AdapterParameterDict _embeddingA = new();
    private readonly AdapterParameterDict _embeddingB = new();
    private readonly Dictionary<string, LoraConfig> _configs = [];
    private readonly Dictionary<string, ILoraVariant> _variants = [];
    private readonly IReadOnlyList<Func<LoraConfig, ILoraVariant?>> _variantFactories;

    public LoraLayer(BaseLayer baseLayer, IReadOnlyList<Func<LoraConfig, ILoraVariant?>>? variantFactories = null) : base(nameof(LoraLayer), baseLayer)
    {
        _variantFactories = variantFactories ?? [];
        register_module("lora_dropout", _dropout);
        register_module("lora_A", _loraA);
        register_module("lora_B", _loraB);
        register_module("lora_embedding_A", _embeddingA);
        register_module("lora_embedding_B", _embeddingB);
    }

    public override string PeftType => LoraConfig.Type;

    /// <summary>The resolved config (rank and alpha after patterns) of one adapter.</summary>
    public LoraConfig ConfigOf(string adapterName) => _configs[adapterName];

    public int RankOf(string adapterName) => _configs[adapterName].Rank;

    public double ScalingOf(string adapterName) => _configs[adapterName].Scaling;

    protected override void CreateAdapter(string adapterName, AdapterConfig config)
    {
        var c = (LoraConfig)config;
        var variant = _variantFactories.Select(f => f(c)).FirstOrDefault(v => v is not null);
        if (c.UseDora && variant is null)
        {
            throw new PeftException("use_dora: no DoRA variant is registered with this LoRA method");
        }
        var r = c.Rank;
        var device = Base.Device;
        var dtype = Base.DType;
        switch (Base.Kind)
        {
            case BaseLayerKind.Embedding:
                if (c.LoraBias)
                {
                    throw new PeftException("lora_bias=true is not supported on an Embedding (as in PEFT); target Linear or Conv layers");
                }
                var ea = new Parameter(torch.empty(r, Base.InFeatures, dtype: dtype, device: device));
                var eb = new Parameter(torch.empty(Base.OutFeatures, r, dtype: dtype, device: device));
                LoraInit.Embedding(ea, eb, c.InitLoraWeights);
                _embeddingA.Set(adapterName, ea);
                _embeddingB.Set(adapterName, eb);
                break;
            case BaseLayerKind.Conv2d:
                var conv = Base.AsConv2d;
                if (conv.groups != 1)
                {
                    throw new PeftException($"LoRA on a grouped Conv2d (groups={conv.groups}) is not supported");
                }
                // Dilation and padding mode are copied to lora_A too (PEFT issue #3697: omitting them breaks dilated convs).
                var pad = conv.padding ?? throw new PeftException($"LoRA on a Conv2d with padding '{conv.padding_type}' is not supported; give explicit padding");
                var convA = nn.Conv2d(Base.InFeatures, r, (conv.kernel_size[0], conv.kernel_size[1]), stride: (conv.stride[0], conv.stride[1]),
                    padding: (pad[0], pad[1]), dilation: (conv.dilation[0], conv.dilation[1]), padding_mode: conv.padding_mode,
                    bias: false, device: device, dtype: dtype);
                var convB = nn.Conv2d(r, Base.OutFeatures, 1, bias: c.LoraBias, device: device, dtype: dtype);
                LoraInit.Standard(convA.weight!, convB.weight!, c.InitLoraWeights, r);
                LoraInit.BiasOfB(convB.bias, c.InitLoraWeights);
                _loraA.Set(adapterName, convA);
                _loraB.Set(adapterName, convB);
                break;
            default:
                var a = nn.Linear(Base.InFeatures, r, hasBias: false, device: device, dtype: dtype);
                var b = nn.Linear(r, Base.OutFeatures, hasBias: c.LoraBias, device: device, dtype: dtype);
                if (c.InitLoraWeights.IsPissa)
                {
                    LoraInit.Pissa(Base, a.weight!, b.weight!, r, c.Scaling, c.InitLoraWeights.PissaNiter);
                }
                else if (c.InitLoraWeights.Method == "olora")
                {
                    LoraInit.Olora(Base, a.weight!, b.weight!, r, c.Scaling);
                }
                else
                {
                    LoraInit.Standard(a.weight!, b.weight!, c.InitLoraWeights, r);
                }
                LoraInit.BiasOfB(b.bias, c.InitLoraWeights);
                _loraA.Set(adapterName, a);
                _loraB.Set(adapterName, b);
                break;
        }
        _dropout.Set(adapterName, c.Dropout > 0 ? nn.Dropout(c.Dropout) : nn.Identity());
        _configs[adapterName] = c;
        if (variant is not null)
        {
            variant.Init(this, adapterName);
            _variants[adapterName] = variant;
        }
    }

    /// <summary>The registered child <paramref name="name"/>, created by <paramref name="create"/> on first use (variants keep their state there).</summary>
    internal T Child<T>(string name, Func<T> create) where T : nn.Module
    {
        var existing = named_children().FirstOrDefault(c => c.name == name).module;
        if (existing is T t)
        {
            return t;
        }
        var made = create();
        register_module(name, made);
        return made;
    }

    /// <summary>Whether the adapter's dropout is a real dropout in training mode (then the input the LoRA branch sees differs from x).</summary>
    internal bool DropsInput(string adapterName) => training && _configs[adapterName].Dropout > 0;

    internal Tensor DropoutOf(string adapterName, Tensor x)
    {
        var input = InBaseDType(x);
        // Without dropout the module is an Identity: skipping its call saves a module dispatch per layer and step.
        return _configs[adapterName].Dropout > 0 ? _dropout[adapterName].call(input) : input;
    }

    private Tensor InBaseDType(Tensor x) => x.dtype == Base.DType ? x : x.to(Base.DType);

    /// <summary>B·A·input without the scale (Linear/Conv1D/Conv2d); for an Embedding the looked-up Aᵀ rows times Bᵀ.</summary>
    internal Tensor Branch(string adapterName, Tensor input)
    {
        if (Base.Kind == BaseLayerKind.Embedding)
        {
            // Row lookup into Aᵀ (vocab × r); no dropout on embeddings, as PEFT.
            var a = _embeddingA[adapterName];
            var rows = a.t().index_select(0, input.reshape(-1)).reshape([.. input.shape, a.shape[0]]);
            return rows.matmul(_embeddingB[adapterName].t());
        }
        return _loraB[adapterName].call(_loraA[adapterName].call(input));
    }

    /// <summary>s·B·A in <c>[out, in]</c> layout (Embedding <c>[dim, vocab]</c>; Conv2d <c>[out, in, kh, kw]</c>): LoRA's own ΔW, before any variant.</summary>
    internal Tensor LoraDelta(string adapterName)
    {
        var s = _configs[adapterName].Scaling;
        switch (Base.Kind)
        {
            case BaseLayerKind.Embedding:
                return _embeddingB[adapterName].matmul(_embeddingA[adapterName]) * s;
            case BaseLayerKind.Conv2d:
                var wa = ((Conv2d)_loraA[adapterName]).weight!;
                var wb = ((Conv2d)_loraB[adapterName]).weight!;
                if (wa.shape[2] == 1 && wa.shape[3] == 1)
                {
                    return wb.squeeze(3).squeeze(2).matmul(wa.squeeze(3).squeeze(2)).unsqueeze(2).unsqueeze(3) * s;
                }
                // ΔK[o,i,…] = s Σ_j B[o,j] A[j,i,…]: a 1×1 convolution of Aᵀ (as a batch over i) with B.
                return nn.functional.conv2d(wa.permute(1, 0, 2, 3), wb).permute(1, 0, 2, 3) * s;
            default:
                return ((Linear)_loraB[adapterName]).weight!.matmul(((Linear)_loraA[adapterName]).weight!) * s;
        }
    }

    protected override void RemoveAdapter(string adapterName)
    {
        _loraA.Remove(adapterName);
        _loraB.Remove(adapterName);
        _embeddingA.Remove(adapterName);
        _embeddingB.Remove(adapterName);
        _dropout.Remove(adapterName);
        if (_variants.Remove(adapterName, out var variant))
        {
            variant.Remove(this, adapterName);
        }
        _configs.Remove(adapterName);
    }

    protected override Tensor ApplyAdapter(string adapterName, Tensor x, Tensor result)
    {
        if (_variants.TryGetValue(adapterName, out var variant))
        {
            return variant.Forward(this, adapterName, x, result);
        }
        var s = _configs[adapterName].Scaling;
        var input = Base.Kind == BaseLayerKind.Embedding ? x : DropoutOf(adapterName, x);
        var branch = Branch(adapterName, input);
        // s = alpha / r is 1 with PEFT's defaults (alpha = r = 8); multiplying by 1 is exact, so skipping it changes no
        // bit and saves a pass over the [.., out] output in the forward and another in the backward.
        return result + (s == 1.0 ? branch : branch * s);
    }

    /// <summary>The adapter's effective ΔW (a variant such as DoRA gives <c>W' − W</c>), in <c>[out, in]</c> layout.</summary>
    public override Tensor? DeltaWeight(string adapterName) =>
        _variants.TryGetValue(adapterName, out var variant) ? variant.EffectiveDelta(this, adapterName) : LoraDelta(adapterName);

    /// <summary>With <c>lora_bias</c>: <c>s·b_B</c>, what merging adds to the base bias; otherwise null.</summary>
    public override Tensor? DeltaBias(string adapterName) =>
        _configs[adapterName].LoraBias ? BiasOfB(adapterName) * _configs[adapterName].Scaling : null;

    protected override void MergeInto(string adapterName)
    {
        if (_variants.TryGetValue(adapterName, out var variant))
        {
            variant.Merge(this, adapterName);
            return;
        }
        // Checked before the weight changes, so a failed merge leaves the layer as it was.
        var baseBias = _configs[adapterName].LoraBias ? BaseBiasForMerge(adapterName) : null;
        base.MergeInto(adapterName);
        AddToBaseBias(adapterName, baseBias, 1.0);
    }

    protected override void UnmergeFrom(string adapterName)
    {
        if (_variants.TryGetValue(adapterName, out var variant))
        {
            variant.Unmerge(this, adapterName);
            return;
        }
        var baseBias = _configs[adapterName].LoraBias ? BaseBiasForMerge(adapterName) : null;
        base.UnmergeFrom(adapterName);
        AddToBaseBias(adapterName, baseBias, -1.0);
    }

    private Parameter BaseBiasForMerge(string adapterName) => Base.Bias ?? throw new PeftException(
        $"LoRA adapter '{adapterName}' has lora_bias=true but its base layer has no bias: it cannot be merged (as in PEFT)");

    private void AddToBaseBias(string adapterName, Parameter? baseBias, double sign)
    {
        if (baseBias is null)
        {
            return;
        }
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        baseBias.add_(DeltaBias(adapterName)!.to(baseBias.dtype), alpha: sign);
    }

    private Tensor BiasOfB(string adapterName) => _loraB[adapterName] switch
    {
        Linear l => l.bias!,
        Conv2d c => c.bias!,
        var m => throw new PeftException($"unexpected LoRA factor module {m.GetType().Name}"),
    };

    public override IReadOnlyDictionary<string, Tensor> AdapterTensors(string adapterName)
    {
        var (keyA, keyB) = FactorKeys(Base.Kind);
        return WithVariant(adapterName, Base.Kind == BaseLayerKind.Embedding
            ? new Dictionary<string, Tensor> { [keyA] = _embeddingA[adapterName], [keyB] = _embeddingB[adapterName] }
            : WithLoraBias(adapterName, new Dictionary<string, Tensor> { [keyA] = WeightOf(_loraA[adapterName]), [keyB] = WeightOf(_loraB[adapterName]) }));
    }

    /// <summary>PEFT's name of the lora_B bias (<c>lora_bias</c>), relative to the layer.</summary>
    public const string LoraBiasKey = "lora_B.bias";

    private Dictionary<string, Tensor> WithLoraBias(string adapterName, Dictionary<string, Tensor> tensors)
    {
        if (_configs[adapterName].LoraBias)
        {
            tensors[LoraBiasKey] = BiasOfB(adapterName);
        }
        return tensors;
    }

    /// <summary>
    /// PEFT's names of the A and B factors on a layer of this kind, relative to the layer: <c>lora_A.weight</c> /
    /// <c>lora_B.weight</c>, or <c>lora_embedding_A</c> / <c>lora_embedding_B</c> on an Embedding.
    /// </summary>
    public static (string A, string B) FactorKeys(BaseLayerKind kind) =>
        kind == BaseLayerKind.Embedding ? ("lora_embedding_A", "lora_embedding_B") : ("lora_A.weight", "lora_B.weight");

    private Dictionary<string, Tensor> WithVariant(string adapterName, Dictionary<string, Tensor> tensors)
    {
        if (_variants.TryGetValue(adapterName, out var variant))
        {
            foreach (var (k, v) in variant.Tensors(this, adapterName))
            {
                tensors[k] = v;
            }
        }
        return tensors;
    }

    private static Parameter WeightOf(nn.Module m) => m switch
    {
        Linear l => l.weight!,
        Conv2d c => c.weight!,
        _ => throw new PeftException($"unexpected LoRA factor module {m.GetType().Name}"),
    };
}
