using PeftSharp.Core;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Methods.Lora;

/// <summary>
/// LoRA on a Linear, GPT-2 Conv1D, Embedding or Conv2d layer, with PEFT's in-memory names
/// (<c>lora_A.&lt;adapter&gt;.weight</c>, <c>lora_embedding_A.&lt;adapter&gt;</c>). Forward: <c>base(x) + s·B(A(dropout(x)))</c>.
/// </summary>
public sealed class LoraLayer : AdapterLayer
{
    private readonly AdapterModuleDict _loraA = new();
    private readonly AdapterModuleDict _loraB = new();
    private readonly AdapterModuleDict _dropout = new();
    private readonly AdapterParameterDict _embeddingA = new();
    private readonly AdapterParameterDict _embeddingB = new();
    private readonly Dictionary<string, LoraConfig> _configs = [];

    public LoraLayer(BaseLayer baseLayer) : base(nameof(LoraLayer), baseLayer)
    {
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
        if (c.UseDora)
        {
            throw new PeftException("use_dora: DoRA is not implemented yet in PeftSharp (it comes with the layer-variant methods)");
        }
        var r = c.Rank;
        var device = Base.Device;
        var dtype = Base.DType;
        switch (Base.Kind)
        {
            case BaseLayerKind.Embedding:
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
                var convB = nn.Conv2d(r, Base.OutFeatures, 1, bias: false, device: device, dtype: dtype);
                LoraInit.Standard(convA.weight!, convB.weight!, c.InitLoraWeights, r);
                _loraA.Set(adapterName, convA);
                _loraB.Set(adapterName, convB);
                break;
            default:
                var a = nn.Linear(Base.InFeatures, r, hasBias: false, device: device, dtype: dtype);
                var b = nn.Linear(r, Base.OutFeatures, hasBias: false, device: device, dtype: dtype);
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
                _loraA.Set(adapterName, a);
                _loraB.Set(adapterName, b);
                break;
        }
        _dropout.Set(adapterName, c.Dropout > 0 ? nn.Dropout(c.Dropout) : nn.Identity());
        _configs[adapterName] = c;
    }

    protected override void RemoveAdapter(string adapterName)
    {
        _loraA.Remove(adapterName);
        _loraB.Remove(adapterName);
        _embeddingA.Remove(adapterName);
        _embeddingB.Remove(adapterName);
        _dropout.Remove(adapterName);
        _configs.Remove(adapterName);
    }

    protected override Tensor ApplyAdapter(string adapterName, Tensor x, Tensor result)
    {
        var s = _configs[adapterName].Scaling;
        if (Base.Kind == BaseLayerKind.Embedding)
        {
            // Row lookup into Aᵀ (vocab × r); no dropout on embeddings, as PEFT.
            var a = _embeddingA[adapterName];
            var rows = a.t().index_select(0, x.reshape(-1)).reshape([.. x.shape, a.shape[0]]);
            return result + rows.matmul(_embeddingB[adapterName].t()) * s;
        }
        var loraA = _loraA[adapterName];
        var input = _dropout[adapterName].call(x.dtype == Base.DType ? x : x.to(Base.DType));
        return result + _loraB[adapterName].call(loraA.call(input)) * s;
    }

    public override Tensor? DeltaWeight(string adapterName)
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

    public override IReadOnlyDictionary<string, Tensor> AdapterTensors(string adapterName)
    {
        if (Base.Kind == BaseLayerKind.Embedding)
        {
            return new Dictionary<string, Tensor>
            {
                ["lora_embedding_A"] = _embeddingA[adapterName],
                ["lora_embedding_B"] = _embeddingB[adapterName],
            };
        }
        return new Dictionary<string, Tensor>
        {
            ["lora_A.weight"] = WeightOf(_loraA[adapterName]),
            ["lora_B.weight"] = WeightOf(_loraB[adapterName]),
        };
    }

    private static Parameter WeightOf(nn.Module m) => m switch
    {
        Linear l => l.weight!,
        Conv2d c => c.weight!,
        _ => throw new PeftException($"unexpected LoRA factor module {m.GetType().Name}"),
    };
}
