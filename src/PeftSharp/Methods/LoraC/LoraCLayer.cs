using PeftSharp.Core;
using PeftSharp.Methods.ConvKernel;
using PeftSharp.Methods.Lora;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Methods.LoraC;

/// <summary>
/// LoRA-C / DoRA-C. Conv2d: <c>lora_A</c> a conv <c>C_in → r</c> with the base kernel size, stride, padding, padding mode
/// and dilation (<c>lora_A.weight [r, C_in, k_h, k_w]</c>), <c>lora_B</c> a 1×1 conv <c>r → C_out</c>
/// (<c>lora_B.weight [C_out, r, 1, 1]</c>); the branch runs as these two convs, <c>ΔK = (B·A).view(K)</c>. Linear:
/// <c>lora_A.weight [r, in]</c>, <c>lora_B.weight [out, r]</c>. Tensor names and shapes are PEFT's conv LoRA, so a PEFT
/// LoRA (or DoRA) conv adapter loads as LoRA-C (DoRA-C) unchanged. Grouped convs are not supported (as here for LoRA).
/// </summary>
public sealed class LoraCLayer : KernelAdapterLayer
{
    private readonly AdapterModuleDict _loraA = new();
    private readonly AdapterModuleDict _loraB = new();

    public LoraCLayer(BaseLayer baseLayer) : base(nameof(LoraCLayer), baseLayer)
    {
        if (BaseConv is { groups: not 1 } conv)
        {
            throw new PeftException($"LoRA-C on a grouped Conv2d (groups={conv.groups}) is not supported; use CONV_LORA or CP_LORA");
        }
        register_module("lora_A", _loraA);
        register_module("lora_B", _loraB);
    }

    public override string PeftType => LoraCConfig.Type;

    protected override void CreateFactors(string adapterName, KernelLoraConfig config)
    {
        var r = config.Rank;
        nn.Module<Tensor, Tensor> a, b;
        Tensor wa, wb;
        if (BaseConv is { } conv)
        {
            var ca = nn.Conv2d(Base.InFeatures, r, (conv.kernel_size[0], conv.kernel_size[1]), stride: (conv.stride[0], conv.stride[1]),
                padding: (conv.padding![0], conv.padding[1]), dilation: (conv.dilation[0], conv.dilation[1]), padding_mode: conv.padding_mode,
                bias: false, device: Base.Device, dtype: Base.DType);
            var cb = nn.Conv2d(r, Base.OutFeatures, 1, bias: false, device: Base.Device, dtype: Base.DType);
            (a, b, wa, wb) = (ca, cb, ca.weight!, cb.weight!);
        }
        else
        {
            var la = nn.Linear(Base.InFeatures, r, hasBias: false, device: Base.Device, dtype: Base.DType);
            var lb = nn.Linear(r, Base.OutFeatures, hasBias: false, device: Base.Device, dtype: Base.DType);
            (a, b, wa, wb) = (la, lb, la.weight!, lb.weight!);
        }
        // PEFT's LoRA init: A Kaiming-uniform (a = √5, fan_in = C_in·k_h·k_w), B = 0; false leaves B random too.
        LoraInit.Standard(wa, wb, InitLoraWeights.FromFlag(config.InitLoraWeights), r);
        _loraA.Set(adapterName, a);
        _loraB.Set(adapterName, b);
    }

    protected override void RemoveFactors(string adapterName)
    {
        _loraA.Remove(adapterName);
        _loraB.Remove(adapterName);
    }

    protected override Tensor ComposeKernel(string adapterName)
    {
        var (a, b) = (WeightOf(_loraA[adapterName]), WeightOf(_loraB[adapterName]));
        return b.flatten(1).matmul(a.flatten(1)).reshape(KernelShape);
    }

    protected override Tensor BranchOutput(string adapterName, Tensor input) => _loraB[adapterName].call(_loraA[adapterName].call(input));

    protected override IReadOnlyDictionary<string, Tensor> FactorTensors(string adapterName) => new Dictionary<string, Tensor>
    {
        ["lora_A.weight"] = WeightOf(_loraA[adapterName]),
        ["lora_B.weight"] = WeightOf(_loraB[adapterName]),
    };

    private static Parameter WeightOf(nn.Module m) => m switch
    {
        Conv2d c => c.weight!,
        Linear l => l.weight!,
        _ => throw new PeftException($"unexpected LoRA-C factor module {m.GetType().Name}"),
    };
}
