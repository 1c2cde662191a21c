using PeftSharp.Methods.LoHa;
using PeftSharp.Methods.LoKr;
using PeftSharp.Methods.Bone;
using PeftSharp.Methods.Lora;
using PeftSharp.Methods.Miss;

namespace PeftSharp.Core;

/// <summary>The methods PeftSharp ships. One line per method.</summary>
internal static class BuiltinMethods
{
    public static void Register(MethodRegistry registry)
    {
        registry.Add(new LoraMethod(Methods.Dora.DoraVariant.Factory));
        registry.Add(new LoHaMethod());
        registry.Add(new LoKrMethod());
        registry.Add(new MissMethod());
        registry.Add(new BoneMethod());
        registry.Add(new Methods.Hydra.HydraMethod());
        registry.Add(new Methods.LoraC.LoraCMethod());
        registry.Add(new Methods.ConvLora.ConvLoraMethod());
        registry.Add(new Methods.CpLora.CpLoraMethod());
        registry.Add(new Methods.TLora.TLoraMethod());
    }
}
