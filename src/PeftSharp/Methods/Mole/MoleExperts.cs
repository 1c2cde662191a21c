using PeftSharp.Methods.Lora;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Methods.Mole;

/// <summary>One LoRA pair <c>B·A</c> (no scale): <c>lora_A</c> <c>[r, d_in]</c> Kaiming-uniform(a = √5), <c>lora_B</c> <c>[d_out, r]</c> zero.</summary>
public sealed class MoleExpert : nn.Module<Tensor, Tensor>
{
    private readonly Linear _loraA;
    private readonly Linear _loraB;

    public MoleExpert(long inFeatures, long outFeatures, int rank, Device device, ScalarType dtype) : base(nameof(MoleExpert))
    {
        _loraA = nn.Linear(inFeatures, rank, hasBias: false, device: device, dtype: dtype);
        _loraB = nn.Linear(rank, outFeatures, hasBias: false, device: device, dtype: dtype);
        LoraInit.Standard(_loraA.weight!, _loraB.weight!, InitLoraWeights.Default, rank);
        register_module("lora_A", _loraA);
        register_module("lora_B", _loraB);
    }

    /// <summary><c>[r, d_in]</c>.</summary>
    public Parameter A => _loraA.weight!;

    /// <summary><c>[d_out, r]</c>.</summary>
    public Parameter B => _loraB.weight!;

    /// <summary><c>B·A·x</c> for x <c>[.., d_in]</c>.</summary>
    public override Tensor forward(Tensor x) => _loraB.call(_loraA.call(x));
}

/// <summary>The K experts of one adapter on one projection, registered as <c>0</c> … <c>K−1</c>.</summary>
public sealed class MoleExperts : nn.Module<Tensor, Tensor>
{
    private readonly List<MoleExpert> _experts = [];

    public MoleExperts(int count, long inFeatures, long outFeatures, int rank, Device device, ScalarType dtype) : base(nameof(MoleExperts))
    {
        for (var k = 0; k < count; k++)
        {
            var expert = new MoleExpert(inFeatures, outFeatures, rank, device, dtype);
            _experts.Add(expert);
            register_module(k.ToString(System.Globalization.CultureInfo.InvariantCulture), expert);
        }
    }

    public int Count => _experts.Count;

    public MoleExpert this[int k] => _experts[k];

    /// <summary>Not a forward of its own: the layer calls each expert on the tokens routed to it.</summary>
    public override Tensor forward(Tensor x) => throw new PeftException("MoleExperts has no forward of its own; call an expert by index");
}
