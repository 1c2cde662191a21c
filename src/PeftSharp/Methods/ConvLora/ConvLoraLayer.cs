using PeftSharp.Core;
using PeftSharp.Methods.ConvKernel;
using PeftSharp.Methods.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Methods.ConvLora;

/// <summary>
/// convLoRA / convDoRA as loralib's <c>ConvLoRA</c> (microsoft/LoRA <c>loralib/layers.py</c>): <c>lora_A [r·k, C_in·k]</c>
/// (Kaiming-uniform, a = √5), <c>lora_B [C_out/groups·k, r·k]</c> (zero), <c>ΔK = (B·A).view(K)</c>, applied as one extra
/// convolution with the composed kernel (loralib convolves with <c>K + s·ΔK</c>; the sum is the same). Square kernels only,
/// as loralib; grouped convs are supported; a Linear is the k = 1 case. In memory <c>lora_A.&lt;adapter&gt;</c>, saved
/// <c>lora_A</c> and <c>lora_B</c> (plain parameters, as loralib and PEFT's embedding LoRA).
/// </summary>
public sealed class ConvLoraLayer : KernelAdapterLayer
{
    private readonly AdapterParameterDict _loraA = new();
    private readonly AdapterParameterDict _loraB = new();

    public ConvLoraLayer(BaseLayer baseLayer) : base(nameof(ConvLoraLayer), baseLayer)
    {
        if (BaseConv is { } conv && conv.kernel_size[0] != conv.kernel_size[1])
        {
            throw new PeftException($"convLoRA needs a square kernel (loralib's layout), got {conv.kernel_size[0]}×{conv.kernel_size[1]}; use LORA_C or CP_LORA");
        }
        register_module("lora_A", _loraA);
        register_module("lora_B", _loraB);
    }

    public override string PeftType => ConvLoraConfig.Type;

    /// <summary>The (square) kernel size k; 1 for a Linear.</summary>
    private long K => BaseConv?.kernel_size[0] ?? 1;

    protected override void CreateFactors(string adapterName, KernelLoraConfig config)
    {
        var r = config.Rank;
        var groups = BaseConv?.groups ?? 1;
        var a = NewFactor(r * K, Base.InFeatures * K);
        var b = NewFactor(Base.OutFeatures / groups * K, r * K);
        LoraInit.Standard(a, b, InitLoraWeights.FromFlag(config.InitLoraWeights), r);
        _loraA.Set(adapterName, a);
        _loraB.Set(adapterName, b);
    }

    protected override void RemoveFactors(string adapterName)
    {
        _loraA.Remove(adapterName);
        _loraB.Remove(adapterName);
    }

    protected override Tensor ComposeKernel(string adapterName) => _loraB[adapterName].matmul(_loraA[adapterName]).view(KernelShape);

    protected override IReadOnlyDictionary<string, Tensor> FactorTensors(string adapterName) => new Dictionary<string, Tensor>
    {
        ["lora_A"] = _loraA[adapterName],
        ["lora_B"] = _loraB[adapterName],
    };
}
