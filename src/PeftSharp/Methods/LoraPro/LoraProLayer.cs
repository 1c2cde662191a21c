using PeftSharp.Core;
using PeftSharp.Methods.Lora;

namespace PeftSharp.Methods.LoraPro;

/// <summary>
/// A LoRA-Pro adapter on a Linear or GPT-2 Conv1D layer: LoRA's forward and tensors (<see cref="LoraFactorsLayer"/>);
/// what differs is the optimizer the trainer gets from <see cref="LoraProMethod"/>.
/// </summary>
public sealed class LoraProLayer(BaseLayer baseLayer) : LoraFactorsLayer(nameof(LoraProLayer), baseLayer)
{
    public override string PeftType => LoraProConfig.Type;

    protected override void CreateAdapter(string adapterName, AdapterConfig config)
    {
        var c = (LoraProConfig)config;
        AddFactors(adapterName, c.Rank, c.Scaling, c.Dropout, c.InitLoraWeights);
    }
}
